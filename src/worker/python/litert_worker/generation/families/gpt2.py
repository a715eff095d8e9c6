"""GPT-2 (`GPT2CausalLM`): learned position embeddings (so the capacity is bounded by
`max_sequence_length`), no RoPE, a plain feed-forward."""

from ...libs import tf_modules
from . import Family


class Gpt2(Family):
    name = "gpt2"
    keras_class = "GPT2CausalLM"

    def max_positions(self):
        return int(self.backbone.max_sequence_length)

    def embed(self, tokens, positions):
        np, tf, keras = tf_modules()
        table = self.backbone.position_embedding.position_embeddings
        pos = tf.gather(tf.convert_to_tensor(table), positions)[None]
        return self.lookup(tokens) + tf.cast(pos, "float32")

    def block(self, i, x, positions, attend):
        np, tf, keras = tf_modules()
        blk = self.blocks[i]
        attn = blk._self_attention_layer
        h = blk._self_attention_layer_norm(x)
        q = attn._query_dense(h)
        k = attn._key_dense(h)
        v = attn._value_dense(h)
        o = attend(q, k, v, 1.0 / float(attn._key_dim) ** 0.5, None)
        x = x + attn._output_dense(o)
        h = blk._feedforward_layer_norm(x)
        f = blk._feedforward_output_dense(blk._feedforward_intermediate_dense(h))
        return x + f

    def head(self, x):
        return self.logits(self.backbone.layer_norm(x))
