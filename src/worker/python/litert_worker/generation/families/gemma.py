"""Gemma (`GemmaCausalLM` on a `GemmaBackbone`): embeddings scaled by sqrt(hidden), RoPE,
optional post-attention and post-FFW norms, a gated GELU feed-forward, logit soft-capping,
Gemma 2's sliding window on even layers."""

from ...libs import tf_modules
from . import Family


class Gemma(Family):
    name = "gemma"
    keras_class = "GemmaCausalLM"
    backbone_class = "GemmaBackbone"

    def embed(self, tokens, positions):
        np, tf, keras = tf_modules()
        x = self.lookup(tokens)
        return x * tf.cast(tf.sqrt(float(self.hidden)), x.dtype)

    def block(self, i, x, positions, attend):
        blk = self.blocks[i]
        attn = blk.attention
        h = blk.pre_attention_norm(x)
        q, k = self.queries_and_keys(attn, h, positions)
        v = attn.value_dense(h)
        if attn.query_head_dim_normalize:
            scale = 1.0 / float(self.head_dim) ** 0.5
        else:
            scale = 1.0 / float(self.hidden // self.q_heads) ** 0.5
        window = attn.sliding_window_size if blk.use_sliding_window_attention else None
        o = attend(q, k, v, scale, attn.logit_soft_cap, window)
        a = attn.output_dense(o)
        if blk.use_post_attention_norm:
            a = blk.post_attention_norm(a)
        x = x + a
        h = blk.pre_ffw_norm(x)
        np, tf, keras = tf_modules()
        f = keras.activations.gelu(blk.gating_ffw(h), approximate=True) * blk.gating_ffw_2(h)
        f = blk.ffw_linear(f)
        if blk.use_post_ffw_norm:
            f = blk.post_ffw_norm(f)
        return x + f

    def queries_and_keys(self, attn, h, positions):
        """The attention's queries and keys of `h`, rotated to `positions`."""
        q = attn._apply_rope(attn.query_dense(h), 0, positions=positions)
        k = attn._apply_rope(attn.key_dense(h), 0, positions=positions)
        return q, k

    def head(self, x):
        return self.logits(self.backbone.layer_norm(x))
