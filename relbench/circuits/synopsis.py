"""Attention synopsis: where each category of image token looks in the text, per layer, head and
sampling step, and which heads stand out as relation or object heads.

For every (prompt, seed) the model generates an image under `CrossAttentionHooks` capture; the
scorer then finds the two objects the prompt names (`relbench.scoring.masks`), and each image
token (8×8 grid cell) is split into the fractions of its pixels covered by object 1 (subject),
object 2 (reference) and background. Text tokens are categorised by role (`roles.py`).

    mass[l, h, s, c, t] = mean over images of  Σ_i w_i(c) · P_lhs(i → t)  /  Σ_i w_i(c)

where P_lhs(i → t) is the attention probability image token i gives to the text tokens of
category t in layer l, head h, step s (conditional branch), and w_i(c) the fraction of token i
in image category c. Each row mass[l, h, s, c, :] sums to 1. Only images where the scorer bound
both objects take part (the others have no object tokens); `n_bound` counts them.

Rankings divide by the mean number of tokens per category, n_t (over the same images, padding
excluded; special tokens count as filler), and n = Σ_t n_t, so 1 means "as much as an average
text token" (mean over steps written ⟨·⟩_s):

    relation(l, h) = ⟨m[obj1, relation] + m[obj2, relation]⟩_s · n / (2 n_relation)
    object(l, h)   = ⟨m[obj1, shape1] / n_shape1 + m[obj2, shape2] / n_shape2⟩_s · n / 2

with m = mass[l, h, s]; a category with no token (n_t = 0) contributes 0.

Outputs (written to a temporary directory renamed into place when complete): `synopsis.json`,
`synopsis.safetensors` (tensors `mass` (layers, heads, steps, 3, 6) float32, `token_counts` (6,)
and `image_counts` (3,): bound images with any token in each image category) and one heat map
`heatmap_<category>.png` per text category (layer × head, mass from object tokens).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from relbench.circuits.attention import HookedModel, open_model
from relbench.circuits.roles import IMAGE_CATEGORIES, TEXT_CATEGORIES, category_matrix
from relbench.dit.checkpoint import replace_dir

SYNOPSIS_JSON = "synopsis.json"
SYNOPSIS_TENSORS = "synopsis.safetensors"
DEFAULT_SEEDS = (0, 1, 2, 3)


@dataclass
class Synopsis:
    """synopsis.json as a dict, and the mass tensor (layers, heads, steps, 3, 6)."""

    info: dict[str, Any]
    mass: np.ndarray
    token_counts: np.ndarray
    image_counts: np.ndarray


def select_prompts(suite: Any, n_prompts: int | None) -> list[Any]:
    """All prompts of `suite`, or `n_prompts` of them evenly spaced over its order (so a small
    sample still covers its relations and shapes)."""
    prompts = list(suite.prompts)
    if n_prompts is None or n_prompts >= len(prompts):
        return prompts
    if n_prompts < 1:
        raise ValueError(f"n_prompts must be positive, got {n_prompts}")
    idx = np.unique(np.linspace(0, len(prompts) - 1, n_prompts).round().astype(int))
    return [prompts[i] for i in idx]


def load_suite(suite: str | Any) -> Any:
    """A suite by name (`core`, `file:PATH`) or a Suite object as is."""
    if isinstance(suite, str):
        from relbench.runner import resolve_suite

        return resolve_suite(suite)
    return suite


def run_info(
    hm: HookedModel, suite: Any, prompts: Sequence[Any], seeds: Sequence[int]
) -> dict[str, Any]:
    """What a synopsis or an ablation was run on, the first fields of its JSON file: the model,
    the suite (version, prompt hash), the number of prompts, the seeds, the sampling steps and the
    model's layers × heads."""
    layers, heads = hm.shape
    return {
        "model": hm.describe(),
        "suite": suite.name,
        "suite_version": suite.version,
        "prompt_hash": suite.prompt_hash,
        "n_prompts": len(prompts),
        "seeds": list(seeds),
        "steps": hm.steps,
        "layers": layers,
        "heads": heads,
        "layer_names": hm.layer_names,
    }


def name_heads(ranked: list[dict[str, Any]], layer_names: Sequence[str]) -> list[dict[str, Any]]:
    """The ranked heads with their stable `name` ("L2H1"; Flux single-stream "S0H1")."""
    return [r | {"name": f"{layer_names[r['layer']]}H{r['head']}"} for r in ranked]


def synopsis(
    model: Any,
    suite: str | Any = "core",
    n_prompts: int | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    steps: int = 14,
    out: str | Path | None = None,
    *,
    guidance: float | None = None,
    batch_size: int = 16,
    detector: str = "default",
    overwrite: bool = False,
    progress: bool = False,
) -> Synopsis:
    """Generate `suite` × `seeds` with `model` (a name, model object or pipeline), capture its
    cross-attention and reduce it to the synopsis; with `out`, write it there (see module doc).

    A prompt whose token roles cannot be parsed fails before anything is generated, and `out`
    is only ever complete or absent (an existing `out` needs `overwrite`).
    """
    from relbench.scoring import load_detector

    out = None if out is None else Path(out)
    if out is not None and out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite to replace it")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    hm = model if isinstance(model, HookedModel) else open_model(model, steps=steps,
                                                                 guidance=guidance)
    the_suite = load_suite(suite)
    prompts = select_prompts(the_suite, n_prompts)
    roles = {p.prompt: hm.roles(p.prompt) for p in prompts}  # unparseable prompts fail here
    det = load_detector(detector)
    acc = _Accumulator()
    jobs = [(p, s) for p in prompts for s in seeds]
    bar = progress_bar(len(jobs), progress, "synopsis")
    with hm.hooks(capture=True) as hooks:
        for batch in batches(jobs, batch_size):
            images = hm.generate([p.prompt for p, _ in batch], [s for _, s in batch], hooks)
            captured = hooks.capture().numpy()  # (B, layers, heads, steps, N, 6)
            for (p, _), image, cap in zip(batch, images, captured):
                acc.add(cap, image, p.spec, roles[p.prompt], det)
            bar.update(len(batch))
    bar.close()
    result = acc.result(*hm.shape, hm.steps)
    result.info = {
        **run_info(hm, the_suite, prompts, seeds),
        "categories": {"image": list(IMAGE_CATEGORIES), "text": list(TEXT_CATEGORIES)},
        "n_images": acc.n_images,
        "n_bound": acc.n_bound,
        "detector": det.describe(),
        **{kind: name_heads(ranked, hm.layer_names)
           for kind, ranked in rank_heads(result.mass, result.token_counts).items()},
    }
    if out is not None:
        write_synopsis(result, out, overwrite=overwrite)
    return result


def rank_heads(mass: np.ndarray, token_counts: np.ndarray) -> dict[str, list[dict[str, Any]]]:
    """`relation_heads` and `object_heads`, every head ranked best first (module doc formulas)."""
    t = {c: i for i, c in enumerate(TEXT_CATEGORIES)}
    o1, o2 = IMAGE_CATEGORIES.index("obj1"), IMAGE_CATEGORIES.index("obj2")
    m = mass.mean(axis=2)  # (layers, heads, 3, 6) over steps
    n = float(token_counts.sum())

    def per_token(cat: str) -> float:
        k = float(token_counts[t[cat]])
        return n / k if k > 0 else 0.0

    rel = (m[:, :, o1, t["relation"]] + m[:, :, o2, t["relation"]]) / 2 * per_token("relation")
    obj = (m[:, :, o1, t["shape1"]] * per_token("shape1")
           + m[:, :, o2, t["shape2"]] * per_token("shape2")) / 2
    return {"relation_heads": _ranked(rel), "object_heads": _ranked(obj)}


def _ranked(score: np.ndarray) -> list[dict[str, Any]]:
    rows = [{"layer": int(layer), "head": int(h), "score": round(float(score[layer, h]), 6)}
            for layer, h in np.ndindex(*score.shape)]
    return sorted(rows, key=lambda r: (-r["score"], r["layer"], r["head"]))


class _Accumulator:
    """Running sums of per-image masses (only images with both objects bound)."""

    def __init__(self) -> None:
        self.sums: np.ndarray | None = None  # (layers, heads, steps, 3, 6) float64
        self.image_counts = np.zeros(len(IMAGE_CATEGORIES))
        self.token_sums = np.zeros(len(TEXT_CATEGORIES))
        self.n_images = self.n_bound = 0

    def add(self, cap: np.ndarray, image: Any, spec: Any, roles: list[str], det: Any) -> None:
        """cap (layers, heads, steps, N, 6) for one image."""
        from relbench.scoring.masks import grid_coverage, object_masks

        self.n_images += 1
        if self.sums is None:
            self.sums = np.zeros((*cap.shape[:3], len(IMAGE_CATEGORIES), cap.shape[-1]))
        if not isinstance(image, np.ndarray):  # NoImage: nothing to categorise
            return
        masks = object_masks(image, spec, det)
        if not masks.bound:
            return
        grid = int(round(cap.shape[3] ** 0.5))
        w = grid_coverage(masks, grid)  # (N, 3)
        wsum = w.sum(axis=0)  # (3,)
        present = wsum > 0
        per = np.einsum("lhsnt,nc->lhsct", cap, w) / np.where(present, wsum, 1.0)[:, None]
        self.sums += per * present[:, None]
        self.image_counts += present
        self.n_bound += 1
        self.token_sums += category_matrix(roles, len(roles)).sum(axis=0)

    def result(self, layers: int, heads: int, steps: int) -> Synopsis:
        shape = (layers, heads, steps, len(IMAGE_CATEGORIES), len(TEXT_CATEGORIES))
        sums = np.zeros(shape) if self.sums is None else self.sums
        mass = sums / np.maximum(self.image_counts, 1)[:, None]
        tokens = self.token_sums / max(self.n_bound, 1)
        return Synopsis({}, mass.astype(np.float32), tokens.astype(np.float32),
                        self.image_counts.astype(np.float32))


# ---------------------------------------------------------------- files


def write_synopsis(result: Synopsis, out: Path, *, overwrite: bool = False) -> None:
    """Write the synopsis files into a temporary sibling of `out`, then rename it to `out`."""
    from safetensors.numpy import save_file

    out = Path(out)
    with staged_dir(out, overwrite=overwrite) as tmp:
        (tmp / SYNOPSIS_JSON).write_text(json.dumps(result.info, indent=2) + "\n")
        save_file({"mass": result.mass, "token_counts": result.token_counts,
                   "image_counts": result.image_counts}, str(tmp / SYNOPSIS_TENSORS))
        plot_heatmaps(result, tmp)


def load_synopsis(path: str | Path) -> Synopsis:
    """Read a synopsis directory written by `synopsis`."""
    from safetensors.numpy import load_file

    path = Path(path)
    missing = [f for f in (SYNOPSIS_JSON, SYNOPSIS_TENSORS) if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{path} is not a synopsis directory (missing {', '.join(missing)})"
        )
    t = load_file(str(path / SYNOPSIS_TENSORS))
    return Synopsis(json.loads((path / SYNOPSIS_JSON).read_text()), t["mass"], t["token_counts"],
                    t["image_counts"])


class staged_dir:
    """Context manager: a fresh temporary directory next to `out`, renamed to `out` on success
    and deleted on error, so `out` never holds a partial result."""

    def __init__(self, out: Path, *, overwrite: bool = False) -> None:
        self.out, self.overwrite = Path(out), overwrite
        self.tmp = self.out.parent / f".{self.out.name}.tmp-{os.getpid()}"

    def __enter__(self) -> Path:
        if self.out.exists() and not self.overwrite:
            raise FileExistsError(f"{self.out} exists; pass overwrite to replace it")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()
        return self.tmp

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        replace_dir(self.tmp, self.out)


def plot_heatmaps(result: Synopsis, folder: Path) -> list[Path]:
    """One PNG per text category: layer × head map of the mass from object tokens to it
    (mean of obj1 and obj2, mean over steps)."""
    from matplotlib.figure import Figure

    o = [IMAGE_CATEGORIES.index("obj1"), IMAGE_CATEGORIES.index("obj2")]
    maps = result.mass.mean(axis=2)[:, :, o].mean(axis=2)  # (layers, heads, 6)
    layers, heads = maps.shape[:2]
    paths = []
    for t, cat in enumerate(TEXT_CATEGORIES):
        fig = Figure(figsize=(1.2 + 0.5 * heads, 1.0 + 0.4 * layers), layout="constrained")
        ax = fig.add_subplot()
        im = ax.imshow(maps[:, :, t], cmap="viridis", vmin=0.0, aspect="auto")
        ax.set_xticks(range(heads), [f"H{h}" for h in range(heads)])
        names = (result.info or {}).get("layer_names") or [f"L{i}" for i in range(layers)]
        ax.set_yticks(range(layers), names)
        ax.set_title(f"object tokens → {cat}", fontsize=9)
        fig.colorbar(im, ax=ax, label="attention mass")
        path = folder / f"heatmap_{cat}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths


def batches(items: list, n: int) -> Iterator[list]:
    """`items` in consecutive batches of `n` (the last may be shorter)."""
    for i in range(0, len(items), n):
        yield items[i : i + n]


def progress_bar(total: int, enabled: bool, desc: str) -> Any:
    """A tqdm bar counting images, silent unless `enabled` (library code never prints)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="img", desc=desc)


__all__ = [
    "SYNOPSIS_JSON",
    "SYNOPSIS_TENSORS",
    "Synopsis",
    "batches",
    "load_suite",
    "load_synopsis",
    "plot_heatmaps",
    "progress_bar",
    "rank_heads",
    "run_info",
    "select_prompts",
    "staged_dir",
    "synopsis",
    "write_synopsis",
]
