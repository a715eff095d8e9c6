"""Llama (`LlamaCausalLM`): RoPE, grouped-query attention, a gated feed-forward."""

from ...libs import tf_modules
from . import Family


class Llama(Family):
    name = "llama"
    keras_class = "LlamaCausalLM"

    def __init__(self, model):
        super().__init__(model)
        b = self.backbone
        self.num_layers = b.num_layers
        self.q_heads = b.num_query_heads
        self.kv_heads = b.num_key_value_heads
        self.hidden = b.hidden_dim
        self.head_dim = b.hidden_dim // b.num_query_heads
        self.vocab = b.vocabulary_size
        self.blocks = list(b.transformer_layers)

    def embed(self, tokens, positions):
        return self.lookup(tokens)

    def block(self, i, x, positions, attend):
        np, tf, keras = tf_modules()
        blk = self.blocks[i]
        attn = blk._self_attention_layer
        h = blk._self_attention_layernorm(x)
        q = attn.rotary_embedding_layer(attn._query_dense(h), positions=positions)
        k = attn.rotary_embedding_layer(attn._key_dense(h), positions=positions)
        v = attn._value_dense(h)
        o = attend(q, k, v, float(attn._inv_norm_factor), None)
        x = x + attn._output_dense(o)
        h = blk._feedforward_layernorm(x)
        gate = blk.activation(blk._feedforward_gate_dense(h))
        f = blk._feedforward_output_dense(gate * blk._feedforward_intermediate_dense(h))
        return x + f

    def head(self, x):
        return self.logits(self.backbone.layer_norm(x))


class Llama3(Llama):
    """Llama 3 (`Llama3CausalLM`): Llama's decoder; 3.1's RoPE frequency scaling is the
    backbone's own rotary layer's."""

    name = "llama3"
    keras_class = "Llama3CausalLM"
