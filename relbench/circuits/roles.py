"""Text-token roles: which of a prompt's encoder tokens is colour 1, shape 1, relation, colour 2,
shape 2 or filler, for every text encoder relbench runs.

The grammar (`relbench.suites.grammar.analyse_prompt`) gives one role per *word*. Encoders see
other units — `rte`/`rtep` the regex words of `relbench.dit.encoders.words` (punctuation split
off), Hugging Face encoders (minilm, T5, a diffusers pipeline's tokenizer) sub-word pieces plus
special tokens — so roles are carried over by character span: a token takes the role of the
grammar word its characters overlap, punctuation takes "filler", special tokens ([CLS], [SEP],
</s>) take "special" and padding "pad". For the synopsis "special" and "pad" count as filler
(padding gets no attention anyway: its keys are masked).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from relbench.suites.grammar import ROLES, PromptParseError, analyse_prompt

TEXT_CATEGORIES: tuple[str, ...] = ROLES
"""Text-token categories of the synopsis: color1, shape1, relation, color2, shape2, filler."""
IMAGE_CATEGORIES: tuple[str, ...] = ("obj1", "obj2", "background")
"""Image-token categories: the subject's mask, the reference's mask, everything else."""
SPECIAL, PAD = "special", "pad"
"""Token roles outside the grammar (category "filler")."""

RoleFn = Callable[[str], list[str]]
"""prompt → one role per (unpadded) encoder token, in the encoder's token order."""


def word_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, role) of every grammar word in `text` (character offsets into `text`).

    A prompt the grammar cannot read raises PromptParseError naming the prompt.
    """
    try:
        parsed = analyse_prompt(text)
    except PromptParseError as e:
        raise PromptParseError(f"no token roles for prompt {text!r}: {e}", text=text) from e
    return [(a, b, role) for (a, b), role in zip(_locate(text, parsed.words), parsed.roles)]


def roles_from_offsets(text: str, offsets: Sequence[tuple[int, int]]) -> list[str]:
    """One role per token from its (start, end) character offsets; (0, 0) is a special token."""
    spans = word_spans(text)
    out = []
    for start, end in offsets:
        if end <= start:
            out.append(SPECIAL)
            continue
        role = next((r for a, b, r in spans if a < end and start < b), "filler")
        out.append(role)
    return out


def rte_roles(text: str, max_length: int) -> list[str]:
    """Roles of the tokens an `rte`/`rtep` encoder sees (`encoders.words`), truncated like it."""
    from relbench.dit.encoders import words

    toks = words(text)[:max_length]
    return roles_from_offsets(text, _locate(text, toks))


def hf_roles(tokenizer: Any, text: str, max_length: int) -> list[str]:
    """Roles of a fast Hugging Face tokenizer's tokens (special tokens included, truncated to
    `max_length` like the encoders do, padding left out)."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            "token roles need a fast tokenizer (character offsets); "
            f"{type(tokenizer).__name__} is not"
        )
    enc = tokenizer(text, truncation=True, max_length=max_length, return_offsets_mapping=True)
    return roles_from_offsets(text, [tuple(o) for o in enc["offset_mapping"]])


def encoder_role_fn(encoder: Any) -> RoleFn:
    """The role function of a relbench text encoder (`relbench.dit.encoders`)."""
    from relbench.dit.encoders import HFEncoder, RandomTokenEncoder

    if isinstance(encoder, RandomTokenEncoder):
        return lambda text: rte_roles(text, encoder.max_length)
    if isinstance(encoder, HFEncoder):
        return lambda text: hf_roles(encoder.tokenizer, text, encoder.max_length)
    raise ValueError(f"no token roles for text encoder {type(encoder).__name__}")


def diffusers_role_fn(pipeline: Any) -> RoleFn:
    """The role function of a diffusers pipeline's tokenizer, with the pipeline's own text
    preprocessing without caption cleaning (lower-case, strip) and `max_sequence_length`."""
    import inspect

    tokenizer = getattr(pipeline, "tokenizer", None)
    if tokenizer is None:
        raise ValueError(f"{type(pipeline).__name__} has no tokenizer; token roles need one")
    param = inspect.signature(pipeline.__call__).parameters.get("max_sequence_length")
    max_length = param.default if param is not None else tokenizer.model_max_length

    def roles(text: str) -> list[str]:
        clean = text.lower().strip()
        return hf_roles(tokenizer, clean, max_length)

    return roles


def category_matrix(roles: Sequence[str], length: int) -> np.ndarray:
    """(length, 6) one-hot text categories (TEXT_CATEGORIES order) for a padded token sequence:
    special, padding and tokens past `roles` count as filler."""
    out = np.zeros((length, len(TEXT_CATEGORIES)), np.float32)
    filler = TEXT_CATEGORIES.index("filler")
    index = {r: i for i, r in enumerate(TEXT_CATEGORIES)}
    for t in range(length):
        role = roles[t] if t < len(roles) else PAD
        out[t, index.get(role, filler)] = 1.0
    return out


def role_mask(roles: Sequence[str], wanted: Sequence[str], length: int) -> np.ndarray:
    """(length,) bool: the tokens whose role is one of `wanted`."""
    check_roles(wanted)
    want = set(wanted)
    return np.array([t < len(roles) and roles[t] in want for t in range(length)], bool)


def check_roles(roles: Sequence[str]) -> None:
    """A ValueError naming any role that is not in TEXT_CATEGORIES (nor special / pad)."""
    from relbench.scene import did_you_mean

    known = (*TEXT_CATEGORIES, SPECIAL, PAD)
    for r in roles:
        if r not in known:
            raise ValueError(f"unknown token role {r!r}{did_you_mean(r, known)}")


def _locate(text: str, pieces: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of `pieces`, found in order in the lower-cased text (every grammar word
    and every rte token is a lower-cased substring of the prompt)."""
    low, spans, at = text.lower(), [], 0
    for piece in pieces:
        i = low.find(piece, at)
        if i < 0:
            raise PromptParseError(
                f"no token roles for prompt {text!r}: cannot find {piece!r} in it", text=text
            )
        spans.append((i, i + len(piece)))
        at = i + len(piece)
    return spans


__all__ = [
    "IMAGE_CATEGORIES",
    "PAD",
    "SPECIAL",
    "TEXT_CATEGORIES",
    "RoleFn",
    "category_matrix",
    "check_roles",
    "diffusers_role_fn",
    "encoder_role_fn",
    "hf_roles",
    "role_mask",
    "roles_from_offsets",
    "rte_roles",
    "word_spans",
]
