"""Gemma 3, text only (`Gemma3CausalLM` on a `Gemma3Backbone` without a vision encoder):
Gemma's decoder with an RMS norm on each query and key head before RoPE, feed-forward
halves `intermediate_dim` wide, and local layers (a sliding window, RoPE base 10k) between
global ones (RoPE base 1M)."""

from ...libs import tf_modules
from . import Family


class Gemma3(Family):
    name = "gemma3"
    keras_class = "Gemma3CausalLM"
    backbone_class = "Gemma3Backbone"

    def __init__(self, model):
        super().__init__(model)
        b = self.backbone
        self.num_layers = b.num_layers
        self.q_heads = b.num_query_heads
        self.kv_heads = b.num_key_value_heads
        self.head_dim = b.head_dim
        self.hidden = b.hidden_dim
        self.vocab = b.vocabulary_size
        self.blocks = list(b.transformer_layers)

    def refuse(self, capacity):
        if getattr(self.backbone, "vision_encoder", None) is not None:
            return "Gemma 3's vision encoder is not exported for generation; export the text-only model"
        return None

    def embed(self, tokens, positions):
        np, tf, keras = tf_modules()
        x = self.lookup(tokens)
        return x * tf.cast(tf.sqrt(float(self.hidden)), x.dtype)

    def block(self, i, x, positions, attend):
        np, tf, keras = tf_modules()
        blk = self.blocks[i]
        attn = blk.attention
        h = blk.pre_attention_norm(x)
        q = attn.query_dense(h)
        k = attn.key_dense(h)
        if attn.use_query_key_norm:
            q = attn.query_norm(q)
            k = attn.key_norm(k)
        q = attn.rope_layer(q, positions=positions)
        k = attn.rope_layer(k, positions=positions)
        v = attn.value_dense(h)
        # The block builds its attention with `query_head_dim_normalize=True`.
        scale = 1.0 / float(self.head_dim) ** 0.5 if attn.query_head_dim_normalize else \
            1.0 / float(self.hidden // self.q_heads) ** 0.5
        window = attn.sliding_window_size if blk.use_sliding_window_attention else None
        o = attend(q, k, v, scale, attn.logit_soft_cap, window)
        a = attn.output_dense(o)
        if blk.use_post_attention_norm:
            a = blk.post_attention_norm(a)
        x = x + a
        h = blk.pre_ffw_norm(x)
        f = keras.activations.gelu(blk.gating_ffw(h), approximate=True) * blk.gating_ffw_2(h)
        f = blk.ffw_linear(f)
        if blk.use_post_ffw_norm:
            f = blk.post_ffw_norm(f)
        return x + f

    def head(self, x):
        return self.logits(self.backbone.layer_norm(x))
