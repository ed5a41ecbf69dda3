"""Weight-space screening: spatial-relation heads found from the weights alone, no forward pass.

For cross-attention head h of block l (`transformer.transformer_blocks[l].attn2`) and relation r:

    P      (N, D)  the 2-D sincos position table PatchEmbed adds to the patch tokens
                   (`transformer.pos_embed.pos_embed`; N = grid², row-major, row 0 = image top)
    Q      = to_q(P)                          (N, H·d) → head h: Q_h (N, d)
    e_t    encoder states of relation r's word tokens in the canonical `core` prompts
    K_r    = mean_t W_k · caption_projection(e_t)   (H·d) → K_r,h (d,)
    M      = Q_h · K_r,h, reshaped to (grid, grid) and mean-centred
    cos    = <M, R_r> / (|M| |R_r|),  R_r[y, x] = ux·(x − c) + uy·(y − c),  (ux, uy) =
             `relbench.scene.DIRECTION[r]` (above = (0, −1), left = (−1, 0), diagonals sums; y down)

A positive cosine means the head's query at the relation's side of the image reads the relation
word more strongly: "above" is attended from the top rows, where the subject should go.

What the query includes. In PixArt blocks (`norm_type="ada_norm_single"`) the cross-attention
reads the residual stream as it is: diffusers' BasicTransformerBlock passes `hidden_states` to
`attn2` without norm2 and without the adaLN-single scale/shift (those modulate only the
self-attention and MLP inputs), so no timestep modulation enters Q. The query input is the
position table alone: the patch content and every earlier block's residual update are left out
(they depend on the image); at layer 0 it is exactly the position part of the input. `norm_q` /
`norm_k` are applied when the attention has them (PixArt has none).

Biases. `to_q`'s bias adds a constant over positions for each key and disappears in the mean
centring; `to_k`'s bias adds Q_n·b_k, the same for every key at query n, which the softmax over
keys cancels, so it is left out (it would otherwise add a relation-independent map).

Relation words. The relation tokens are the words of the prompt's relation phrase (grammar role
`relation`) minus function words ("to", "the", "of", "and"): "above"; "left" for "to the left
of"; "above" and "left" for "above and to the left of". For rte/rtep these are the word vector
(+ the rtep position code at the word's position in the prompt); for contextual encoders (minilm,
t5) the token states in every canonical prompt of that relation, sub-tokens included, averaged
after the caption projection.

Head scores: `score` = mean over relations of |cos| (the paper's screen; heads are ranked by
it); `signed` = mean over relations of cos (high when the head maps every relation to its own
side); `specific` = mean over relations of cos(M_r − M̄, R_r), M̄ the head's mean map over the
relations: only the part of the map that differs between relation words, i.e. what can make the
head attend differently for "above" than for "below". A head whose relation words all share one
spatial map (a position bias, or rtep's shared position code) has a high `score` but cos(above)
≈ −cos(below), so `signed` and `specific` near 0: read `score` together with them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from relbench.runlog import write_json_atomic
from relbench.scene import DIRECTION, RELATIONS, check_relation

SCREEN_FILE = "screen.json"
FUNCTION_WORDS = frozenset({"to", "the", "of", "and", "is"})
"""Words of a relation phrase that carry no direction; the rest are the relation's key tokens."""


if TYPE_CHECKING:  # torch is imported where the weights are read: card/agreement need no torch
    import torch


class ScreenError(ValueError):
    """A transformer or encoder the screening cannot read; the message names what is missing."""


# ---------------------------------------------------------------- ramps and cosines


def ramp(relation: str, grid: int) -> np.ndarray:
    """The relation's linear ramp on a grid × grid map (y down), zero mean: (grid, grid)."""
    ux, uy = DIRECTION[check_relation(relation)]
    c = (grid - 1) / 2
    y, x = np.mgrid[0:grid, 0:grid].astype(np.float64)  # (G, G) each
    return ux * (x - c) + uy * (y - c)


def ramp_cosine(qk_map: np.ndarray, relation: str) -> float:
    """Cosine between the mean-centred map (G, G) and the relation's ramp; 0 for a flat map."""
    m = np.asarray(qk_map, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a QK map must be square (G, G), got shape {m.shape}")
    m = m - m.mean()
    r = ramp(relation, m.shape[0])
    denom = float(np.linalg.norm(m) * np.linalg.norm(r))
    if denom < 1e-12 * max(1.0, float(np.abs(qk_map).max())):
        return 0.0
    return float((m * r).sum() / denom)


# ---------------------------------------------------------------- transformer parts


def _check_transformer(transformer: Any) -> None:
    from relbench.circuits.mmdit import screen_refusal

    refusal = screen_refusal(transformer)
    if refusal is not None:
        raise ScreenError(refusal)
    blocks = getattr(transformer, "transformer_blocks", None)
    if blocks is None or not len(blocks):
        raise ScreenError(
            f"{type(transformer).__name__} has no transformer_blocks: screening needs a "
            "PixArt-family transformer (diffusers PixArtTransformer2DModel)"
        )
    for i, block in enumerate(blocks):
        if getattr(block, "attn2", None) is None:
            raise ScreenError(
                f"transformer block {i} has no cross-attention (attn2): nothing to screen"
            )
    import torch

    table = getattr(getattr(transformer, "pos_embed", None), "pos_embed", None)
    if not isinstance(table, torch.Tensor):
        raise ScreenError(
            "the transformer has no sincos position table (pos_embed.pos_embed): screening reads "
            "the 2-D position embeddings PatchEmbed adds to the patch tokens"
        )


def position_table(transformer: Any) -> tuple[torch.Tensor, int]:
    """The position embeddings added to the patch tokens, (N, D), and the grid side."""
    _check_transformer(transformer)
    table = transformer.pos_embed.pos_embed[0].float()  # (N, D)
    grid = round(math.sqrt(table.shape[0]))
    if grid * grid != table.shape[0]:
        raise ScreenError(f"position table of {table.shape[0]} tokens is not a square grid")
    return table, grid


def _project_captions(transformer: Any, states: torch.Tensor) -> torch.Tensor:
    """caption_projection (when the transformer has one): (T, D_enc) → (T, D)."""
    proj = getattr(transformer, "caption_projection", None)
    return states if proj is None else proj(states)


def _heads(attn: Any, x: torch.Tensor, norm: Any) -> torch.Tensor:
    """(T, H·d) → (T, H, d), with the attention's per-head norm when it has one."""
    out = x.reshape(x.shape[0], attn.heads, -1)  # (T, H, d)
    return out if norm is None else norm(out)


def qk_maps(
    transformer: Any, relation_states: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """relation → (layers, heads, grid, grid) maps Q_h·K_r,h (not centred), from the weights.

    `relation_states[r]` holds the encoder states of relation r's word tokens, (T, D_enc).
    """
    import torch

    with torch.no_grad():
        return _qk_maps(transformer, relation_states)


def _qk_maps(
    transformer: Any, relation_states: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    import torch

    pos, grid = position_table(transformer)
    param = next(transformer.parameters())
    pos = pos.to(param.device, param.dtype)
    out: dict[str, torch.Tensor] = {}
    projected = {}
    for rel, states in relation_states.items():
        states = torch.as_tensor(states).to(param.device, param.dtype)
        if states.ndim != 2 or states.shape[0] == 0:
            raise ScreenError(
                f"relation {rel!r}: expected relation-token states (T, D), got shape "
                f"{tuple(states.shape)}"
            )
        projected[rel] = _project_captions(transformer, states)  # (T, D)
    maps: dict[str, list[torch.Tensor]] = {rel: [] for rel in relation_states}
    for block in transformer.transformer_blocks:
        attn = block.attn2
        q = _heads(attn, attn.to_q(pos), getattr(attn, "norm_q", None))  # (N, H, d)
        for rel, proj in projected.items():
            k_lin = torch.nn.functional.linear(proj, attn.to_k.weight)  # (T, H·d), bias cancels
            k = _heads(attn, k_lin, getattr(attn, "norm_k", None)).mean(0)  # (H, d)
            m = torch.einsum("nhd,hd->hn", q, k)  # (H, N)
            maps[rel].append(m.reshape(-1, grid, grid))  # (H, G, G)
    for rel, per_layer in maps.items():
        out[rel] = torch.stack(per_layer).float().cpu()  # (layers, H, G, G)
    return out


def screen_heads(transformer: Any, relation_states: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Per head and relation the ramp cosine; per head the score; see the module docstring.

    Returns the `screen.json` document without its "model" field: {"heads": [{layer, head,
    relation, cosine}...], "top": [{layer, head, score, signed, specific, best_relation}...] (all
    heads, ranked by score), "layers", "heads_per_layer", "grid", "relations"}.
    """
    maps = qk_maps(transformer, relation_states)
    relations = list(maps)
    n_layers, n_heads, grid, _ = next(iter(maps.values())).shape
    shared = np.mean([maps[r].numpy() for r in relations], axis=0)  # (layers, H, G, G)
    rows, top = [], []
    for layer in range(n_layers):
        for head in range(n_heads):
            cos = {r: ramp_cosine(maps[r][layer, head].numpy(), r) for r in relations}
            rows += [
                {"layer": layer, "head": head, "relation": r, "cosine": round(c, 6)}
                for r, c in cos.items()
            ]
            best = max(cos, key=lambda r: abs(cos[r]))
            specific = (
                [
                    ramp_cosine(maps[r][layer, head].numpy() - shared[layer, head], r)
                    for r in relations
                ]
                if len(relations) > 1
                else [0.0]
            )
            top.append(
                {
                    "layer": layer,
                    "head": head,
                    "score": round(float(np.mean([abs(c) for c in cos.values()])), 6),
                    "signed": round(float(np.mean(list(cos.values()))), 6),
                    "specific": round(float(np.mean(specific)), 6),
                    "best_relation": best,
                }
            )
    top.sort(key=lambda t: (-t["score"], t["layer"], t["head"]))
    return {
        "heads": rows,
        "top": top,
        "layers": int(n_layers),
        "heads_per_layer": int(n_heads),
        "grid": int(grid),
        "relations": relations,
    }


# ---------------------------------------------------------------- relation-token states


def canonical_prompts(relations: Iterable[str] = RELATIONS) -> dict[str, list[str]]:
    """relation → the `core` suite's prompts of that relation (template 1, canonical phrase)."""
    from relbench.suites import get_suite

    wanted = [check_relation(r) for r in relations]
    out: dict[str, list[str]] = {r: [] for r in wanted}
    for p in get_suite("core").prompts:
        if p.relation in out:
            out[p.relation].append(p.prompt)
    return out


def _token_spans(encoder: Any, prompt: str) -> list[tuple[int, int] | None]:
    """Character span of each of the encoder's token positions for `prompt` (None for special
    or padding tokens), in the order `encoder.encode` lays the states out."""
    from relbench.dit.encoders import HFEncoder, RandomTokenEncoder, words

    if isinstance(encoder, RandomTokenEncoder):
        low, spans, at = prompt.lower(), [], 0
        for w in words(prompt)[: encoder.max_length]:  # each a lower-cased substring, in order
            at = low.index(w, at)
            spans.append((at, at + len(w)))
            at += len(w)
        return spans
    if isinstance(encoder, HFEncoder):
        tok = encoder.tokenizer
        if not getattr(tok, "is_fast", False):
            raise ScreenError(
                f"encoder {encoder.name!r}: mapping words to tokens needs a fast tokenizer "
                "(offset mapping)"
            )
        enc = tok(
            prompt,
            add_special_tokens=True,
            truncation=True,
            max_length=encoder.max_length,
            return_offsets_mapping=True,
        )
        specials = set(tok.all_special_ids)
        return [
            None if (a == b or i in specials) else (a, b)
            for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"])
        ]
    raise ScreenError(f"cannot map words to tokens for encoder {type(encoder).__name__}")


def word_token_positions(encoder: Any, prompt: str) -> list[tuple[str, str, list[int]]]:
    """(word, grammar role, encoder token positions covering it) for each word of the prompt;
    words and roles from `relbench.circuits.roles.word_spans` (PromptParseError if unreadable)."""
    from relbench.circuits.roles import word_spans

    tokens = _token_spans(encoder, prompt)
    return [
        (
            prompt[a:b].lower(),
            role,
            [
                t
                for t, span in enumerate(tokens)
                if span is not None and span[0] < b and a < span[1]
            ],
        )
        for a, b, role in word_spans(prompt)
    ]


def role_positions(
    encoder: Any, prompt: str, role: str, *, content_only: bool = False
) -> list[int]:
    """Token positions of the prompt's words with grammar role `role` (see grammar.ROLES);
    `content_only` drops FUNCTION_WORDS. ScreenError when the role has no token."""
    words = [(w, ts) for w, r, ts in word_token_positions(encoder, prompt) if r == role]
    if content_only:
        words = [(w, ts) for w, ts in words if w not in FUNCTION_WORDS] or words
    positions = sorted({t for _, ts in words for t in ts})
    if not positions:
        raise ScreenError(
            f"prompt {prompt!r}: no {encoder.name} token for role {role!r} "
            "(truncated by max_length, or no such word)"
        )
    return positions


def relation_states(
    encoder: Any, prompts: Mapping[str, Sequence[str]] | None = None
) -> dict[str, torch.Tensor]:
    """relation → encoder states of its relation tokens in its canonical prompts, (T, D_enc)."""
    import torch

    prompts = canonical_prompts() if prompts is None else prompts
    out = {}
    for rel, texts in prompts.items():
        if not texts:
            raise ScreenError(f"no prompt for relation {rel!r}")
        states, _ = encoder.encode(list(texts))  # (P, L, D)
        picked = [
            states[i, role_positions(encoder, t, "relation", content_only=True)]
            for i, t in enumerate(texts)
        ]
        out[rel] = torch.cat(picked).float()  # (T, D)
    return out


# ---------------------------------------------------------------- models and files


def model_parts(model: Any) -> tuple[Any, Any]:
    """(PixArt transformer, relbench TextEncoder) of a loaded relbench model: a bundled /
    `dit:` DiT, or a `diffusers:` PixArt pipeline (its T5 wrapped as an HFEncoder)."""
    pipe = getattr(model, "pipe", None)
    inner = getattr(pipe, "model", None)
    if inner is not None and hasattr(inner, "transformer") and hasattr(pipe, "encoder"):
        return inner.transformer, pipe.encoder
    if pipe is not None and hasattr(pipe, "transformer") and hasattr(pipe, "text_encoder"):
        from relbench.dit.encoders import HFEncoder

        tok = pipe.tokenizer
        return pipe.transformer, HFEncoder(
            "pipeline-text-encoder",
            pipe.text_encoder,
            tok,
            max_length=min(int(tok.model_max_length), 120),
        )
    raise ScreenError(
        f"model {getattr(model, 'name', model)!r} exposes no PixArt transformer and text encoder; "
        "screening works on bundled/dit: models and diffusers PixArt pipelines"
    )


def screen_model(model: Any) -> dict[str, Any]:
    """The full `screen.json` document for a loaded relbench model."""
    transformer, encoder = model_parts(model)
    _check_transformer(transformer)  # before the encoder runs: SD3 / Flux are refused with why
    doc = screen_heads(transformer, relation_states(encoder))
    describe = model.describe() if hasattr(model, "describe") else {"name": str(model)}
    return {"model": describe, "encoder": encoder.name, **doc}


def write_screen(doc: Mapping[str, Any], out_dir: Path) -> Path:
    """Write `screen.json` into `out_dir` (atomically: no half-written file)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SCREEN_FILE
    write_json_atomic(path, doc)
    return path


def read_screen(path: Path) -> dict[str, Any]:
    """A `screen.json` (the file, or a directory holding it), checked for its fields."""
    path = Path(path)
    if path.is_dir():
        path = path / SCREEN_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"screen file {path} not found (write it with relbench circuits screen)"
        )
    doc = json.loads(path.read_text())
    for key in ("model", "heads", "top"):
        if key not in doc:
            raise ValueError(f"{path}: not a screen.json (no {key!r} field)")
    return doc


# ---------------------------------------------------------------- agreement with the synopsis


def _spearman(a: np.ndarray, b: np.ndarray) -> tuple[float, float | None]:
    try:
        from scipy.stats import spearmanr
    except ImportError:
        import pandas as pd

        ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
        return float(np.corrcoef(ra, rb)[0, 1]), None
    res = spearmanr(a, b)
    return float(res.statistic), float(res.pvalue)


def agreement(screen: Mapping[str, Any], synopsis: Mapping[str, Any]) -> dict[str, Any]:
    """Spearman rank correlation between screening scores and synopsis relation-head scores over
    the heads both rank: {"spearman", "p_value" (None without scipy), "n_heads", "top_match"}."""
    scr = {(t["layer"], t["head"]): t["score"] for t in screen["top"]}
    syn = {(t["layer"], t["head"]): t["score"] for t in synopsis["relation_heads"]}
    both = sorted(set(scr) & set(syn))
    if len(both) < 3:
        raise ValueError(f"screen and synopsis share {len(both)} heads; a rank correlation needs 3")
    a = np.array([scr[k] for k in both])
    b = np.array([syn[k] for k in both])
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        rho, p = float("nan"), None
    else:
        rho, p = _spearman(a, b)
    top_scr = max(both, key=lambda k: scr[k])
    top_syn = max(both, key=lambda k: syn[k])
    return {
        "spearman": None if math.isnan(rho) else round(rho, 6),
        "p_value": None if p is None else round(p, 6),
        "n_heads": len(both),
        "top_match": top_scr == top_syn,
    }


__all__ = [
    "FUNCTION_WORDS",
    "SCREEN_FILE",
    "ScreenError",
    "agreement",
    "canonical_prompts",
    "model_parts",
    "position_table",
    "qk_maps",
    "ramp",
    "ramp_cosine",
    "read_screen",
    "relation_states",
    "role_positions",
    "screen_heads",
    "screen_model",
    "word_token_positions",
    "write_screen",
]
