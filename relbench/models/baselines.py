"""`oracle` (renders the true scene: the scorer's ceiling) and `chance` (random layouts: its floor)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from relbench.models.api import GenerationRequest
from relbench.models.registry import register_model


class _RenderBaseline:
    """Shared body of the two baselines: render one image per request from its spec."""

    name = ""

    def __init__(self, size: int = 128) -> None:
        self.size = size

    def _image(self, req: GenerationRequest) -> np.ndarray:
        raise NotImplementedError

    def generate(self, requests: Sequence[GenerationRequest]) -> list[np.ndarray]:
        for req in requests:
            if req.spec is None:
                raise ValueError(f"the {self.name} baseline needs a parsed spec for {req.prompt!r}")
        return [self._image(req) for req in requests]

    @property
    def sampling(self) -> dict[str, Any]:
        return {}  # rendered, not sampled

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "args": {"size": self.size}, "checkpoint_hash": None}


class OracleModel(_RenderBaseline):
    name = "oracle"

    def _image(self, req: GenerationRequest) -> np.ndarray:
        from relbench.baselines import oracle_image

        return oracle_image(req.spec, req.seed, self.size)  # type: ignore[arg-type]


class ChanceModel(_RenderBaseline):
    name = "chance"

    def _image(self, req: GenerationRequest) -> np.ndarray:
        from relbench.baselines import chance_image

        return chance_image(req.spec, req.seed, self.size)  # type: ignore[arg-type]


@register_model("oracle")
def _oracle(size: int = 128) -> OracleModel:
    return OracleModel(size)


@register_model("chance")
def _chance(size: int = 128) -> ChanceModel:
    return ChanceModel(size)
