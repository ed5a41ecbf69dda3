"""The model contract: batched prompts with explicit seeds in, RGB images out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from relbench.scene import RelationSpec


@dataclass(frozen=True)
class GenerationRequest:
    """One image to make: the prompt text, its seed and (when known) its target spec.

    Real models read only `prompt` and `seed`; the `oracle` and `chance` baselines read `spec`.
    """

    prompt: str
    seed: int
    spec: RelationSpec | None = None


@dataclass(frozen=True)
class NoImage:
    """Returned in place of an image a model cannot provide; `reason` becomes the row's `error`
    (e.g. an image folder without an image for this prompt and seed, or a corrupt file)."""

    reason: str


@runtime_checkable
class T2IModel(Protocol):
    """Anything that turns prompts into images. Images are (H, W, 3) uint8 RGB arrays."""

    name: str

    @property
    def sampling(self) -> dict[str, Any]:
        """The options that decide an image besides the prompt and seed (steps, guidance,
        scheduler, dtype, size...), recorded in every run; {} for models that do not sample."""
        ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[np.ndarray | NoImage]:
        """One image (or a `NoImage` saying why not) per request, in order; the same request must
        give the same image."""
        ...

    def describe(self) -> dict[str, Any]:
        """Everything needed to rebuild this model: name, arguments, checkpoint hash."""
        ...


def model_sampling(model: Any) -> dict[str, Any]:
    """`model.sampling` as a plain dict; {} for a third-party model written before the
    protocol named it."""
    sampling = getattr(model, "sampling", None)
    return dict(sampling) if sampling else {}
