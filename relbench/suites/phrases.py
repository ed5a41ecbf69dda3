"""The paper's 22 relation phrases (the training captions' vocabulary).

The first phrase of each relation is the canonical one used by the `core` suite.
"""

from __future__ import annotations

PHRASES: dict[str, tuple[str, ...]] = {
    "upper_left": ("above and to the left of", "to the upper left of", "diagonally up and left from"),
    "upper_right": ("above and to the right of", "to the upper right of", "diagonally up and right from"),
    "lower_left": ("below and to the left of", "to the lower left of", "diagonally down and left from"),
    "lower_right": ("below and to the right of", "to the lower right of", "diagonally down and right from"),
    "above": ("above", "directly above", "higher than"),
    "below": ("below", "directly below", "lower than"),
    "left": ("to the left of", "left of"),
    "right": ("to the right of", "right of"),
}

CANONICAL_PHRASE: dict[str, str] = {rel: phrases[0] for rel, phrases in PHRASES.items()}

ALL_PHRASES: tuple[tuple[str, str], ...] = tuple(
    (rel, phrase) for rel, phrases in PHRASES.items() for phrase in phrases
)
"""(relation, phrase) for all 22 training phrases, in a fixed order."""

assert len(ALL_PHRASES) == 22
