"""Circuit diagnostics for PixArt-family DiTs: cross-attention capture and interventions
(`attention`), token roles per encoder (`roles`), the attention synopsis (`synopsis`) and
ablations with paired seeds (`ablate`). Weight-space screening, embedding arithmetic and circuit
cards live in their own modules beside these.

Importing this package imports torch (the hooks are torch modules' processors).
"""

from relbench.circuits.ablate import ABLATION_JSON, Ablation, ablate, parse_target, random_heads
from relbench.circuits.attention import (
    COND_FIRST,
    COND_SECOND,
    CrossAttentionHooks,
    CrossAttentionProcessor,
    HookedModel,
    Intervention,
    NoCrossAttentionError,
    cross_attention_layers,
    hook_name,
    model_shape,
    open_model,
)
from relbench.circuits.roles import IMAGE_CATEGORIES, TEXT_CATEGORIES
from relbench.circuits.synopsis import (
    SYNOPSIS_JSON,
    SYNOPSIS_TENSORS,
    Synopsis,
    load_synopsis,
    rank_heads,
    synopsis,
)

__all__ = [
    "ABLATION_JSON",
    "COND_FIRST",
    "COND_SECOND",
    "IMAGE_CATEGORIES",
    "SYNOPSIS_JSON",
    "SYNOPSIS_TENSORS",
    "TEXT_CATEGORIES",
    "Ablation",
    "CrossAttentionHooks",
    "CrossAttentionProcessor",
    "HookedModel",
    "Intervention",
    "NoCrossAttentionError",
    "Synopsis",
    "ablate",
    "cross_attention_layers",
    "hook_name",
    "load_synopsis",
    "model_shape",
    "open_model",
    "parse_target",
    "random_heads",
    "rank_heads",
    "synopsis",
]
