"""The prompt vocabulary: every word the grammar knows, and what it means.

Tables only (no logic beyond deriving lookups), so the grammar, the perturbations and the
tests all read the same words. Changing a table changes what parses: bump GRAMMAR_VERSION.
"""

from __future__ import annotations

from relbench.scene import COLOR_RGB, RELATIONS, SHAPES
from relbench.suites.phrases import PHRASES

GRAMMAR_VERSION = "1.0.0"
"""Semantic version (relbench.versions) of the vocabulary and parsing rules below."""

COLOR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "red": ("crimson", "scarlet", "ruby"),
    "blue": ("navy", "azure", "cobalt"),
    "green": ("emerald", "lime"),
    "yellow": ("golden", "lemon"),
    "purple": ("violet", "lavender"),
    "orange": ("tangerine", "amber"),
    "black": ("ebony", "jet"),
    "white": ("ivory", "snow"),
}
"""Words that name a palette colour (`COLOR_RGB`) without being its canonical name.

The paper's own colour-synonym test is red→crimson, blue→navy (the first ones listed)."""

SHAPE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("disk", "disc"),
    "square": ("box",),
    "triangle": (),
}
"""Singular shape synonyms, used by the `shape-synonyms` perturbation (triangle has none that
a reader would not stumble over)."""

PARAPHRASES: dict[str, tuple[str, ...]] = {
    "above": ("on top of", "over", "atop", "north of"),
    "below": ("underneath", "beneath", "under", "south of"),
    "left": ("on the left of", "on the left side of", "west of"),
    "right": ("on the right of", "on the right side of", "east of"),
    "upper_left": ("up and to the left of", "northwest of", "to the top left of"),
    "upper_right": ("up and to the right of", "northeast of", "to the top right of"),
    "lower_left": ("down and to the left of", "southwest of", "to the bottom left of"),
    "lower_right": ("down and to the right of", "southeast of", "to the bottom right of"),
}
"""Relation phrases never used in the paper's training captions (the `paraphrase` set)."""

FILLER_WORDS: frozenset[str] = frozenset(
    {
        "the", "a", "an", "is", "very", "clearly", "just", "also", "there", "here",
        "image", "picture", "photo", "of", "with", "which", "that", "located", "placed",
        "positioned", "situated", "drawn", "shown",
    }
)  # fmt: skip
"""Words that carry no colour, shape or relation. "is" also separates the two objects of the
reversed form ("above the blue circle is the red square")."""

TYPO_WORDS: tuple[str, ...] = ("is", "the", "of", "and")
"""The non-key words the `typos` perturbation may misspell (and the parser forgives)."""

COLOR_WORDS: dict[str, str] = {
    **{c: c for c in COLOR_RGB},
    **{syn: c for c, syns in COLOR_SYNONYMS.items() for syn in syns},
}
"""Every colour word → canonical palette colour."""

SHAPE_WORDS: dict[str, str] = {
    **{s: s for s in SHAPES},
    **{syn: s for s, syns in SHAPE_SYNONYMS.items() for syn in syns},
}
"""Every shape word → canonical shape."""

PHRASE_TABLE: dict[tuple[str, ...], str] = {
    tuple(phrase.split()): rel
    for table in (PHRASES, PARAPHRASES)
    for rel, phrases in table.items()
    for phrase in phrases
}
"""Every relation phrase (22 training phrases + paraphrases), as a word tuple → relation."""

MAX_PHRASE_WORDS: int = max(len(p) for p in PHRASE_TABLE)

KNOWN_WORDS: frozenset[str] = frozenset(
    set(COLOR_WORDS) | set(SHAPE_WORDS) | FILLER_WORDS | {w for p in PHRASE_TABLE for w in p}
)


def _typo_variants(word: str) -> list[str]:
    """Misspellings of `word` by one transposition, doubled letter or (length ≥ 3) dropped letter."""
    out: list[str] = []
    for i in range(len(word) - 1):
        out.append(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
    for i in range(len(word)):
        out.append(word[: i + 1] + word[i] + word[i + 1 :])
    if len(word) >= 3:
        out.extend(word[:i] + word[i + 1 :] for i in range(len(word)))
    return out


def _typo_table() -> dict[str, str]:
    """Misspelling → the function word it came from. Variants that are real vocabulary words
    ("an" from "and") or that two words share are left out, so forgiving a typo never changes
    what a prompt means."""
    owners: dict[str, set[str]] = {}
    for word in TYPO_WORDS:
        for v in _typo_variants(word):
            if v != word:
                owners.setdefault(v, set()).add(word)
    return {
        v: next(iter(ws))
        for v, ws in sorted(owners.items())
        if len(ws) == 1 and v not in KNOWN_WORDS
    }


TYPOS: dict[str, str] = _typo_table()
"""Forgiven misspelling → function word ("teh" → "the")."""

TYPO_CHOICES: dict[str, tuple[str, ...]] = {
    w: tuple(v for v, src in TYPOS.items() if src == w) for w in TYPO_WORDS
}
"""Function word → its forgiven misspellings, in a fixed order (what `typos` draws from)."""

assert set(PARAPHRASES) == set(RELATIONS) == set(PHRASES)
assert not set(COLOR_WORDS) & set(SHAPE_WORDS)
assert not {w for p in PARAPHRASES.values() for w in p} & {w for p in PHRASES.values() for w in p}
