"""Prompt grammar: a RelationSpec ⇄ prompt text.

`format_prompt` writes the paper's six templates; `parse_prompt` reads them back, plus the
training captions (colour words dropped), every phrase in the vocabulary, colour synonyms,
filler words, case/punctuation noise, typos on function words and the reversed word order.
Parsing tokenises, forgives known function-word typos, matches relation phrases longest-first
against `PHRASE_TABLE`, then groups colour/shape words into the two objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from relbench.scene import ObjectSpec, RelationSpec, did_you_mean
from relbench.suites.phrases import CANONICAL_PHRASE
from relbench.suites.vocabulary import (
    COLOR_WORDS,
    FILLER_WORDS,
    KNOWN_WORDS,
    MAX_PHRASE_WORDS,
    PHRASE_TABLE,
    SHAPE_WORDS,
    TYPOS,
)

TEMPLATES: dict[int, str] = {
    1: "{o1} is {rel} {o2}",
    2: "{o1} {rel} {o2}",
    3: "{o1} {rel} the {o2}",
    4: "{o1} is {rel} the {o2}",
    5: "the {o1} is {rel} the {o2}",
    6: "{rel} {o2} is {o1}",
}
"""The paper's perturbation templates; o1 = subject words, o2 = reference words."""

ROLES: tuple[str, ...] = ("color1", "shape1", "relation", "color2", "shape2", "filler")
"""Text-token roles for circuit diagnostics; 1 = subject (first object of template 1)."""

_SPLIT = re.compile(r"[\s\-/]+")
_STRIP = ".,;:!?\"'()[]{}`"


class PromptParseError(ValueError):
    """A prompt the grammar cannot read; the message names the prompt and the problem."""

    def __init__(self, message: str, *, text: str | None = None) -> None:
        super().__init__(message)
        self.text = text


@dataclass(frozen=True)
class ParsedPrompt:
    """Everything `parse_prompt` learns from a prompt."""

    spec: RelationSpec
    phrase: str
    """The relation phrase as matched, after forgiving typos ("to the left of")."""
    template: int | None
    """Which of TEMPLATES the prompt is, word for word after normalising; None if none."""
    words: tuple[str, ...]
    """The prompt's words: lower-cased, punctuation stripped, hyphens split, typos kept."""
    roles: tuple[str, ...]
    """One role from ROLES per word."""


def format_prompt(spec: RelationSpec, *, phrase: str | None = None, template: int = 1) -> str:
    """The text of `spec` in one of the paper's six templates.

    1 `{c1} {s1} is {rel} {c2} {s2}`; 2 drops "is"; 3 drops "is" and puts "the" before the
    second object; 4 keeps "is" and puts "the" before the second object; 5 puts "the" before
    both objects; 6 is the reversed order `{rel} {c2} {s2} is {c1} {s1}` — read as "{rel}
    the reference is the subject", so object 1 stays the subject. An unsaid colour or shape is
    left out ("red is above blue"). `phrase` defaults to the relation's canonical phrase and
    must be one of its phrases (training or paraphrase).
    """
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; choose from {sorted(TEMPLATES)}")
    phrase = CANONICAL_PHRASE[spec.relation] if phrase is None else phrase
    meant = PHRASE_TABLE.get(tuple(phrase.split()))
    if meant is None:
        raise ValueError(f"unknown relation phrase {phrase!r}")
    if meant != spec.relation:
        raise ValueError(f"phrase {phrase!r} means {meant!r}, not {spec.relation!r}")
    o1, o2 = _object_words(spec.subject, "subject"), _object_words(spec.reference, "reference")
    return TEMPLATES[template].format(o1=o1, rel=phrase, o2=o2)


def parse_prompt(text: str) -> RelationSpec:
    """The target spec of a prompt; PromptParseError (a ValueError) when it cannot be read."""
    return analyse_prompt(text).spec


def prompt_roles(text: str) -> list[tuple[str, str]]:
    """(word, role) for every word of the prompt (see ParsedPrompt.words and ROLES)."""
    p = analyse_prompt(text)
    return list(zip(p.words, p.roles))


@lru_cache(maxsize=65536)
def analyse_prompt(text: str) -> ParsedPrompt:
    """Parse a prompt into its spec, phrase, template and per-word roles (cached)."""
    if not isinstance(text, str):
        raise PromptParseError(f"prompt must be a string, not {type(text).__name__}")
    words = tuple(w for w in (t.strip(_STRIP).lower() for t in _SPLIT.split(text)) if w)
    if not words:
        raise PromptParseError("empty prompt", text=text)
    unknown = [w for w in words if w not in KNOWN_WORDS and w not in TYPOS]
    if unknown:
        raise _error(text, _unknown_message(unknown))
    norm = tuple(TYPOS.get(w, w) for w in words)

    # Tag: relation phrases longest-first, then single colour / shape / filler words.
    tags: list[tuple[str, str | None]] = []  # per word: (kind, canonical value)
    phrases: list[tuple[int, int, str]] = []  # (start, end, relation)
    stray: list[str] = []  # phrase-only words outside any phrase
    i = 0
    while i < len(norm):
        for n in range(min(MAX_PHRASE_WORDS, len(norm) - i), 0, -1):
            rel = PHRASE_TABLE.get(norm[i : i + n])
            if rel is not None:
                phrases.append((i, i + n, rel))
                tags.extend([("relation", rel)] * n)
                i += n
                break
        else:
            w = norm[i]
            if w in COLOR_WORDS:
                tags.append(("color", COLOR_WORDS[w]))
            elif w in SHAPE_WORDS:
                tags.append(("shape", SHAPE_WORDS[w]))
            elif w == "is":
                tags.append(("is", None))
            elif w in FILLER_WORDS:
                tags.append(("filler", None))
            else:  # a phrase-only word ("left", "to") outside any phrase
                stray.append(words[i])
                tags.append(("stray", None))
            i += 1
    stray_msg = ", ".join(repr(w) for w in stray)
    if not phrases:
        raise _error(
            text, "no relation phrase found" + (f" ({stray_msg} not part of one)" if stray else "")
        )
    if stray:
        raise _error(text, f"word {stray_msg} is not part of a relation phrase")
    if len(phrases) > 1:
        found = ", ".join(repr(" ".join(norm[a:b])) for a, b, _ in phrases)
        raise _error(text, f"more than one relation phrase ({found})")
    start, end, relation = phrases[0]
    before = _group_objects(tags, 0, start)
    after = _group_objects(tags, end, len(tags))
    if len(before) == 1 and len(after) == 1:
        (subj, subj_idx), (ref, ref_idx) = before[0], after[0]
    elif not before and len(after) == 2:  # reversed: "{rel} {ref} is {subj}"
        (ref, ref_idx), (subj, subj_idx) = after
    else:
        raise _error(
            text,
            f"expected one object before and one after the relation phrase, or two after it "
            f"in the reversed order '{{rel}} B is A'; found {len(before)} before and "
            f"{len(after)} after",
        )
    roles = ["relation" if k == "relation" else "filler" for k, _ in tags]
    for idx, num in ((subj_idx, "1"), (ref_idx, "2")):
        for j in idx:
            roles[j] = tags[j][0] + num
    spec = RelationSpec(subj, relation, ref)
    phrase = " ".join(norm[start:end])
    return ParsedPrompt(spec, phrase, _which_template(norm, spec, phrase), words, tuple(roles))


def _error(text: str, problem: str) -> PromptParseError:
    return PromptParseError(f"cannot parse {text!r}: {problem}", text=text)


def _object_words(obj: ObjectSpec, which: str) -> str:
    words = obj.words()
    if not words:
        raise ValueError(f"the {which} has neither a colour nor a shape; a prompt cannot name it")
    return words


def _group_objects(
    tags: list[tuple[str, str | None]], lo: int, hi: int
) -> list[tuple[ObjectSpec, list[int]]]:
    """Objects in tags[lo:hi]: an optional colour then an optional shape; "is" and a second
    colour or shape start a new object, other fillers are transparent."""
    objects: list[tuple[ObjectSpec, list[int]]] = []
    color: str | None = None
    shape: str | None = None
    idx: list[int] = []

    def close() -> None:
        nonlocal color, shape, idx
        if idx:
            objects.append((ObjectSpec(shape=shape, color=color), idx))
        color, shape, idx = None, None, []

    for j in range(lo, hi):
        kind, value = tags[j]
        if kind == "is":
            close()
        elif kind == "color":
            if color is not None or shape is not None:
                close()
            color = value
            idx.append(j)
        elif kind == "shape":
            if shape is not None:
                close()
            shape = value
            idx.append(j)
    close()
    return objects


def _which_template(norm: tuple[str, ...], spec: RelationSpec, phrase: str) -> int | None:
    """The template whose text equals the prompt word for word (colour/shape synonyms and
    typos normalised), or None."""
    canon = tuple(
        COLOR_WORDS.get(w) or SHAPE_WORDS.get(w) or w for w in norm
    )
    for t in TEMPLATES:
        if tuple(format_prompt(spec, phrase=phrase, template=t).split()) == canon:
            return t
    return None


def _unknown_message(unknown: list[str]) -> str:
    first = unknown[0]
    hint = did_you_mean(first, sorted(KNOWN_WORDS))
    if not hint.startswith(" (did"):
        hint = ""
    if len(unknown) == 1:
        return f"unknown word {first!r}{hint}"
    return f"unknown words {', '.join(repr(w) for w in unknown)}{hint}"


__all__ = [
    "ROLES",
    "TEMPLATES",
    "ParsedPrompt",
    "PromptParseError",
    "analyse_prompt",
    "format_prompt",
    "parse_prompt",
    "prompt_roles",
]
