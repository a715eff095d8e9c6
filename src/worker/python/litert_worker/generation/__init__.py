"""Stage `generation`: a KerasHub causal LM exported as ONE `.tflite` with LiteRT-LM's
prefill/decode contract over a per-layer KV cache, and its parity with Keras `generate()`.

The contract (`shared/research/litert_lm.md`): signatures `prefill_{T}` (one per prefill
length) and `decode`; inputs `tokens` int32 [1,T], `input_pos` int32 [T], `mask` [1,1,T,C];
each layer's `kv_cache_k_{i}` / `kv_cache_v_{i}` [1,H,C,D] is an input AND an output of every
signature under the same name; `decode` returns `logits` [1,1,V]. The runtime pads unused
prefill slots with token 0 and position 0 and masks their rows completely, so a cache update
is one contiguous dynamic-update-slice at `input_pos[0]` (a scatter by position would let
the pads overwrite slot 0), RoPE takes its positions from `input_pos`, and attention takes
its mask from `mask` only (the model never builds its own causal mask).

The forward pass is written per family (`families/`), from the KerasHub model's own layers
(their weights and their RoPE), so every signature reads the same variables: the converter
stores each weight once, shared by all subgraphs.

The package is split by part: `families/` (how each KerasHub causal LM maps onto the shared
decoder skeleton, one module per family), `graph` (the signatures, the SavedModel and the
conversion, with the int8 table of tied embeddings), `runtime` (driving the artifact as
LiteRT-LM does), `text` (the tokenizer as generation uses it), `parity` (the check against
Keras `generate()`), `embedding` (Keras' token embedding read a slice at a time for its
references) and `corpus` (the teacher-forced check on a held-out text)."""

from .families import family_of
from .graph import PresetOnly, TiedInt8Table, decode_signature, describe, export, exportable, release
from .parity import parity, references
from .runtime import Runtime

__all__ = [
    "PresetOnly",
    "Runtime",
    "TiedInt8Table",
    "decode_signature",
    "describe",
    "export",
    "exportable",
    "family_of",
    "parity",
    "references",
    "release",
]
