"""Gemma 3, text only (`Gemma3CausalLM` on a `Gemma3Backbone` without a vision encoder):
Gemma's decoder with an RMS norm on each query and key head before RoPE, feed-forward
halves `intermediate_dim` wide, and local layers (a sliding window, RoPE base 10k) between
global ones (RoPE base 1M), each layer's RoPE its attention's own."""

from .gemma import Gemma


class Gemma3(Gemma):
    name = "gemma3"
    keras_class = "Gemma3CausalLM"
    backbone_class = "Gemma3Backbone"

    def refuse(self, capacity):
        if getattr(self.backbone, "vision_encoder", None) is not None:
            return "Gemma 3's vision encoder is not exported for generation; export the text-only model"
        return None

    def queries_and_keys(self, attn, h, positions):
        q = attn.query_dense(h)
        k = attn.key_dense(h)
        if attn.use_query_key_norm:
            q = attn.query_norm(q)
            k = attn.key_norm(k)
        return attn.rope_layer(q, positions=positions), attn.rope_layer(k, positions=positions)
