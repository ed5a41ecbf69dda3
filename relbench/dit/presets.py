"""Model sizes of the paper (hidden / depth / heads, head dim 64) as small factory functions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from relbench.scene import did_you_mean


@dataclass(frozen=True)
class DiTSize:
    """Width, depth and head count of a PixArt-style DiT."""

    hidden: int
    depth: int
    heads: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def nano(head_dim: int = 64) -> DiTSize:
    return DiTSize(hidden=3 * head_dim, depth=3, heads=3)


def micro(head_dim: int = 64) -> DiTSize:
    return DiTSize(hidden=3 * head_dim, depth=6, heads=3)


def mini(head_dim: int = 64) -> DiTSize:
    return DiTSize(hidden=6 * head_dim, depth=6, heads=6)


def base(head_dim: int = 64) -> DiTSize:
    return DiTSize(hidden=12 * head_dim, depth=12, heads=12)


PRESETS: dict[str, Callable[..., DiTSize]] = {"nano": nano, "micro": micro, "mini": mini, "B": base}
"""Preset name → factory; `head_dim` shrinks every preset alike (tests use tiny widths)."""


def get_preset(name: str, head_dim: int = 64) -> DiTSize:
    """The size called `name`; an unknown name gets a "did you mean"."""
    if name not in PRESETS:
        raise ValueError(f"unknown DiT preset {name!r}{did_you_mean(name, PRESETS)}")
    if head_dim < 1:
        raise ValueError(f"head_dim must be positive, got {head_dim}")
    return PRESETS[name](head_dim)
