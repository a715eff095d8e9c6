"""Qwen 3 (`Qwen3CausalLM`): Llama's decoder with an RMS norm on each query and key head
before RoPE, an explicit head dimension, tied embeddings by default, and KerasHub's
sliding window on every layer (32,768 positions unless the config says)."""

from .llama import Llama


class Qwen3(Llama):
    name = "qwen3"
    keras_class = "Qwen3CausalLM"
    backbone_class = "Qwen3Backbone"

    def queries_and_keys(self, attn, h):
        return attn._query_dense_layer_norm(attn._query_dense(h)), attn._key_dense_layer_norm(attn._key_dense(h))

    def window(self, attn):
        return attn.sliding_window_size or None
