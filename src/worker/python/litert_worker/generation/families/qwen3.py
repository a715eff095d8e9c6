"""Qwen 3 (`Qwen3CausalLM`): Llama's decoder with an RMS norm on each query and key head
before RoPE, an explicit head dimension, tied embeddings by default, and KerasHub's
sliding window on every layer (32,768 positions unless the config says)."""

from ...libs import tf_modules
from . import Family


class Qwen3(Family):
    name = "qwen3"
    keras_class = "Qwen3CausalLM"
    backbone_class = "Qwen3Backbone"

    def __init__(self, model):
        super().__init__(model)
        b = self.backbone
        self.num_layers = b.num_layers
        self.q_heads = b.num_query_heads
        self.kv_heads = b.num_key_value_heads
        self.hidden = b.hidden_dim
        self.head_dim = b.head_dim
        self.vocab = b.vocabulary_size
        self.blocks = list(b.transformer_layers)

    def embed(self, tokens, positions):
        return self.lookup(tokens)

    def block(self, i, x, positions, attend):
        blk = self.blocks[i]
        attn = blk._self_attention_layer
        h = blk._self_attention_layernorm(x)
        q = attn._query_dense_layer_norm(attn._query_dense(h))
        k = attn._key_dense_layer_norm(attn._key_dense(h))
        q = attn.rotary_embedding_layer(q, positions=positions)
        k = attn.rotary_embedding_layer(k, positions=positions)
        v = attn._value_dense(h)
        o = attend(q, k, v, float(attn._inv_norm_factor), None, attn.sliding_window_size or None)
        x = x + attn._output_dense(o)
        h = blk._feedforward_layernorm(x)
        gate = blk.activation(blk._feedforward_gate_dense(h))
        f = blk._feedforward_output_dense(blk._feedforward_intermediate_dense(h) * gate)
        return x + f

    def head(self, x):
        return self.logits(self.backbone.layer_norm(x))
