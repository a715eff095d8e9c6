"""Llama (`LlamaCausalLM`): RoPE, grouped-query attention, a gated feed-forward."""

from ...libs import tf_modules
from . import Family


class Llama(Family):
    name = "llama"
    keras_class = "LlamaCausalLM"

    def embed(self, tokens, positions):
        return self.lookup(tokens)

    def block(self, i, x, positions, attend):
        np, tf, keras = tf_modules()
        blk = self.blocks[i]
        attn = blk._self_attention_layer
        h = blk._self_attention_layernorm(x)
        q, k = self.queries_and_keys(attn, h)
        q = attn.rotary_embedding_layer(q, positions=positions)
        k = attn.rotary_embedding_layer(k, positions=positions)
        v = attn._value_dense(h)
        o = attend(q, k, v, float(attn._inv_norm_factor), None, self.window(attn))
        x = x + attn._output_dense(o)
        h = blk._feedforward_layernorm(x)
        gate = blk.activation(blk._feedforward_gate_dense(h))
        f = blk._feedforward_output_dense(gate * blk._feedforward_intermediate_dense(h))
        return x + f

    def queries_and_keys(self, attn, h):
        """The attention's queries and keys of `h`, before RoPE."""
        return attn._query_dense(h), attn._key_dense(h)

    def window(self, attn):
        """The attention's sliding window, or None."""
        return None

    def head(self, x):
        return self.logits(self.backbone.layer_norm(x))


class Llama3(Llama):
    """Llama 3 (`Llama3CausalLM`): Llama's decoder; 3.1's RoPE frequency scaling is the
    backbone's own rotary layer's."""

    name = "llama3"
    keras_class = "Llama3CausalLM"
