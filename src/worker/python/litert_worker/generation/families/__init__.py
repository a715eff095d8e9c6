"""The KerasHub causal LMs a generation export supports: how each maps onto the shared
decoder skeleton (an embedding, `num_layers` blocks each with q/k/v projections and a cached
attention, a head). Everything about one family lives in its module; adding a family is a
module here and a line in `FAMILIES`."""

from ...protocol import BuildError


class Family:
    """A decoder-only transformer as the export sees it: an embedding, `num_layers`
    blocks each with q/k/v projections and a cached attention, and a head."""

    name = "?"

    def __init__(self, model):
        self.model = model
        self.backbone = b = model.backbone
        self.table = None  # a TiedInt8Table when the artifact stores int8 weights
        # Every KerasHub decoder names its dimensions alike; GPT-2 has one head count, and
        # a backbone without `head_dim` splits the hidden size between its query heads.
        self.num_layers = b.num_layers
        self.q_heads = getattr(b, "num_query_heads", None) or b.num_heads
        self.kv_heads = getattr(b, "num_key_value_heads", None) or self.q_heads
        self.hidden = b.hidden_dim
        self.head_dim = getattr(b, "head_dim", None) or self.hidden // self.q_heads
        self.vocab = b.vocabulary_size
        self.blocks = list(b.transformer_layers)

    def lookup(self, tokens):
        """The token embedding of `tokens`."""
        if self.table is not None:
            return self.table.lookup(tokens)
        return self.backbone.token_embedding(tokens)

    def logits(self, h):
        """The vocabulary projection of the final hidden state."""
        if self.table is not None:
            return self.table.logits(h)
        return self.backbone.token_embedding(h, reverse=True)

    # The KerasHub task class this family exports, and the backbone class it must hold
    # (None: any).
    keras_class = None
    backbone_class = None

    def max_positions(self):
        """The largest position the model can embed, or None when RoPE has no limit."""
        return None

    def refuse(self, capacity):
        """A reason this model cannot be exported with this capacity, or None."""
        return None


from .gemma import Gemma  # noqa: E402 - the families subclass Family
from .gemma3 import Gemma3  # noqa: E402
from .gpt2 import Gpt2  # noqa: E402
from .llama import Llama, Llama3  # noqa: E402
from .qwen3 import Qwen3  # noqa: E402

FAMILIES = {f.keras_class: f for f in (Gemma, Gemma3, Llama, Llama3, Qwen3, Gpt2)}


def family_of(model):
    cls = type(model).__name__
    fam = FAMILIES.get(cls)
    if fam is None:
        raise BuildError(
            "generation",
            f"`{cls}` is not supported for generation exports; supported: {', '.join(sorted(FAMILIES))}",
            family=cls,
            supported=sorted(FAMILIES),
        )
    if fam.backbone_class is not None and type(model.backbone).__name__ != fam.backbone_class:
        raise BuildError("generation", f"`{cls}` with a `{type(model.backbone).__name__}` is not supported")
    return fam(model)
