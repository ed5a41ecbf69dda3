"""The paper's training set, regenerated from a seed: scenes, captions, rendered images.

Every example is drawn from its own `random.Random`, seeded by (seed, index), so any row can
be regenerated alone with `example(index, seed, ...)` and a dataset is byte-identical for a
given seed and arguments. Two on-disk forms: a Hugging Face `datasets` directory
(`save_to_disk`) and an image folder with `metadata.jsonl` (the layout `relbench score` reads).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

import cv2
import datasets
import numpy as np
from tqdm.auto import tqdm

import relbench
from relbench.render import check_size, render
from relbench.scene import (
    ObjectSpec, RelationSpec, Scene, check_geometry, paper_scene, random_scene,
)
from relbench.styles import check_factors, sample_styled
from relbench.suites.phrases import PHRASES

COLOR_WORD_KEEP_PROB = 0.5
"""Probability that each colour word is kept in a training caption (the paper's 0.5)."""

MANIFEST_NAME = "relbench_dataset.json"
METADATA_NAME = "metadata.jsonl"
DATASET_FORMATS: tuple[str, ...] = ("hf", "imagefolder")

_OBJECT = {"shape": datasets.Value("string"), "color": datasets.Value("string")}
FEATURES = datasets.Features(
    {
        "index": datasets.Value("int64"),
        "image": datasets.Image(),
        "caption": datasets.Value("string"),
        "relation": datasets.Value("string"),
        "phrase": datasets.Value("string"),
        "subject_shape": datasets.Value("string"),
        "subject_color": datasets.Value("string"),
        "reference_shape": datasets.Value("string"),
        "reference_color": datasets.Value("string"),
        "subject_x": datasets.Value("float64"),
        "subject_y": datasets.Value("float64"),
        "reference_x": datasets.Value("float64"),
        "reference_y": datasets.Value("float64"),
        "spec": {"subject": _OBJECT, "relation": datasets.Value("string"), "reference": _OBJECT},
        "scene": {
            "objects": datasets.List(
                {
                    **_OBJECT,
                    "x": datasets.Value("float64"),
                    "y": datasets.Value("float64"),
                    "size": datasets.Value("float64"),
                }
            ),
            "background": datasets.List(datasets.Value("int64")),
        },
    }
)
"""Columns of a built dataset; `spec` is `RelationSpec.to_dict()` with both objects in full."""


@dataclass(frozen=True)
class Caption:
    """A sampled caption and the phrase it used."""

    text: str
    relation: str
    phrase: str


def sample_caption_parts(scene: Scene, rng: random.Random) -> Caption:
    """`sample_caption`, also returning the relation and the phrase drawn."""
    if len(scene.objects) < 2:
        raise ValueError(f"a caption needs two objects, the scene has {len(scene.objects)}")
    relation = scene.relation(0, 1)
    if relation is None:
        raise ValueError("the two objects' centres coincide: no relation to caption")
    subj, ref = scene.objects[0], scene.objects[1]
    phrase = rng.choice(PHRASES[relation])
    keep_subj = rng.random() < COLOR_WORD_KEEP_PROB
    keep_ref = rng.random() < COLOR_WORD_KEEP_PROB
    words = [
        subj.color if keep_subj else "",
        subj.shape,
        "is",
        phrase,
        ref.color if keep_ref else "",
        ref.shape,
    ]
    return Caption(" ".join(w for w in words if w), relation, phrase)


def sample_caption(scene: Scene, rng: random.Random) -> str:
    """The paper's caption for object 0 (subject) and object 1 (reference):
    "{c1} {s1} is {phrase} {c2} {s2}", the phrase uniform among the strict relation's
    phrases, each colour word kept independently with COLOR_WORD_KEEP_PROB."""
    return sample_caption_parts(scene, rng).text


def example_rng(index: int, seed: int) -> random.Random:
    """The generator of row `index` of the dataset with `seed` (string seeding: SHA-512 based,
    stable across platforms and Python versions)."""
    return random.Random(f"relbench.data/{int(seed)}/{int(index)}")


def example(
    index: int,
    seed: int = 0,
    size: int = 128,
    *,
    antialias: bool = False,
    allow_overlap: bool = True,
    geometry: str = "relbench",
    styles: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Row `index` of the dataset built with `seed`: every FEATURES column, the image as an
    (size, size, 3) uint8 array. `geometry="paper"` draws the paper's own shapes at its
    whole-pixel centres (relbench.scene.paper_scene), so the set is the paper's distribution.
    With `styles` (relbench.styles factors) the row is a styled render instead (anti-aliased,
    never overlapping, relations spread evenly) with a `styles` column: each factor's variant."""
    if index < 0:
        raise ValueError(f"example index must be >= 0, got {index}")
    rng = example_rng(index, seed)
    if styles:
        return _styled_example(index, seed, size, styles, rng)
    if check_geometry(geometry) == "paper":
        scene = paper_scene(rng, image_size=size, allow_overlap=allow_overlap)
    else:
        scene = random_scene(rng, allow_overlap=allow_overlap)
    caption = sample_caption_parts(scene, rng)
    subj, ref = scene.objects[0], scene.objects[1]
    spec = RelationSpec(
        ObjectSpec(subj.shape, subj.color), caption.relation, ObjectSpec(ref.shape, ref.color)
    )
    return _row(index, render(scene, size, antialias=antialias, geometry=geometry), caption,
                scene, spec)


def _row(index: int, image: np.ndarray, caption: Caption, scene: Scene,
         spec: RelationSpec) -> dict[str, Any]:
    """One dataset row (the FEATURES columns) of a drawn scene and its caption."""
    subj, ref = scene.objects[0], scene.objects[1]
    return {
        "index": int(index),
        "image": image,
        "caption": caption.text,
        "relation": caption.relation,
        "phrase": caption.phrase,
        "subject_shape": subj.shape,
        "subject_color": subj.color,
        "reference_shape": ref.shape,
        "reference_color": ref.color,
        "subject_x": subj.x,
        "subject_y": subj.y,
        "reference_x": ref.x,
        "reference_y": ref.y,
        "spec": spec.to_dict(),
        "scene": scene.to_dict(),
    }


def _styled_example(
    index: int, seed: int, size: int, styles: tuple[str, ...], rng: random.Random
) -> dict[str, Any]:
    """`example` for a styled row: layout and look from relbench.styles, seeded by
    (seed, index); the caption from `rng`."""
    key = f"relbench.data.styles/{int(seed)}/{int(index)}".encode()
    styled = sample_styled(styles, int.from_bytes(hashlib.sha256(key).digest()[:8], "little"),
                           size=size)
    caption = sample_caption_parts(styled.scene, rng)
    row = _row(index, styled.image, caption, styled.scene, styled.spec)
    row["styles"] = dict(styled.factors)
    return row


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of an (H, W, 3) uint8 RGB image."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _check_args(n: int, size: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"number of examples must be a positive integer, got {n!r}")
    check_size(size)


def _encoded_rows(
    n: int, seed: int, size: int, antialias: bool, allow_overlap: bool, progress: bool,
    geometry: str = "relbench", styles: tuple[str, ...] = (),
) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """(PNG bytes, every other column) for rows 0..n-1."""
    for i in tqdm(range(n), desc="rendering", unit="img", disable=not progress):
        row = example(i, seed, size, antialias=antialias, allow_overlap=allow_overlap,
                      geometry=geometry, styles=styles)
        yield encode_png(row.pop("image")), row


class _ContentHash:
    """SHA-256 over every row's PNG bytes and its other columns (canonical JSON), in order;
    the same value for both on-disk formats."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, png: bytes, row: dict[str, Any]) -> None:
        meta = json.dumps(row, sort_keys=True, separators=(",", ":")).encode()
        for part in (png, meta):
            self._h.update(len(part).to_bytes(8, "little"))
            self._h.update(part)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _build(
    n: int, size: int, seed: int, antialias: bool, allow_overlap: bool, progress: bool,
    geometry: str = "relbench", styles: tuple[str, ...] = (),
) -> tuple[datasets.Dataset, str]:
    _check_args(n, size)
    features = FEATURES
    if styles:  # each row's style factor variants, as a JSON object string
        features = datasets.Features({**FEATURES, "styles": datasets.Value("string")})
    columns: dict[str, list[Any]] = {name: [] for name in features}
    digest = _ContentHash()
    for png, row in _encoded_rows(
        n, seed, size, antialias, allow_overlap, progress, geometry, styles
    ):
        digest.update(png, row)
        if styles:
            row["styles"] = json.dumps(row["styles"], sort_keys=True)
        columns["image"].append({"bytes": png, "path": None})
        for name, value in row.items():
            columns[name].append(value)
    return datasets.Dataset.from_dict(columns, features=features), digest.hexdigest()


def build_dataset(
    n: int,
    *,
    size: int = 128,
    seed: int = 0,
    antialias: bool = False,
    allow_overlap: bool = True,
    progress: bool = False,
    geometry: str = "relbench",
    styles: Iterable[str] = (),
) -> datasets.Dataset:
    """`n` rows of the paper's training distribution as an in-memory `datasets.Dataset`
    (columns FEATURES; images stored as PNG). Same arguments → byte-identical dataset.
    With `styles` (relbench.styles factors) the images are styled renders."""
    return _build(n, size, seed, antialias, allow_overlap, progress, check_geometry(geometry),
                  check_factors(styles))[0]


@contextmanager
def _hf_progress(enabled: bool) -> Iterator[None]:
    """Turn the `datasets` library's own progress bars off for the block unless `enabled`."""
    was_disabled = datasets.are_progress_bars_disabled()
    if not enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            datasets.enable_progress_bars()


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{out} is not empty; pass overwrite=True (--overwrite) to replace it"
            )
        if not (out / MANIFEST_NAME).is_file():
            raise FileExistsError(
                f"refusing to overwrite {out}: it has no {MANIFEST_NAME}, so it was not written by "
                "relbench data build; remove it yourself"
            )


def save_dataset(
    out: str | Path,
    n: int,
    *,
    size: int = 128,
    seed: int = 0,
    antialias: bool = False,
    allow_overlap: bool = True,
    fmt: Literal["hf", "imagefolder"] = "hf",
    overwrite: bool = False,
    progress: bool = False,
    geometry: str = "relbench",
    styles: Iterable[str] = (),
) -> dict[str, Any]:
    """Build the dataset and write it to `out`, with a MANIFEST_NAME file recording the
    arguments, the relbench version and the content hash. Returns the manifest.

    `fmt="hf"` writes `Dataset.save_to_disk`; `fmt="imagefolder"` writes `images/*.png` and
    METADATA_NAME rows (`file`, `prompt`, `spec`, plus the other columns but the image).
    A non-empty `out` is replaced only with `overwrite` and only if it holds a manifest.
    The data is written to a sibling temporary directory first, so a failure leaves `out`
    as it was.
    """
    if fmt not in DATASET_FORMATS:
        choices = ", ".join(DATASET_FORMATS)
        raise ValueError(f"unknown dataset format {fmt!r}; choose from {choices}")
    _check_args(n, size)
    check_geometry(geometry)
    styles = check_factors(styles)
    out = Path(out)
    _prepare_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if fmt == "hf":
            ds, digest = _build(
                n, size, seed, antialias, allow_overlap, progress, geometry, styles
            )
            with _hf_progress(progress):
                ds.save_to_disk(str(tmp))
        else:
            digest = _write_imagefolder(
                tmp, n, size, seed, antialias, allow_overlap, progress, geometry, styles
            )
        manifest = {
            "generator": "relbench.data",
            "relbench_version": relbench.__version__,
            "format": fmt,
            "args": {
                "n": n,
                "size": size,
                "seed": seed,
                "antialias": antialias,
                "allow_overlap": allow_overlap,
                "geometry": geometry,
            },
            "content_sha256": digest,
        }
        if styles:
            manifest["args"]["styles"] = list(styles)
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return manifest


def _write_imagefolder(
    out: Path, n: int, size: int, seed: int, antialias: bool, allow_overlap: bool, progress: bool,
    geometry: str = "relbench", styles: tuple[str, ...] = (),
) -> str:
    (out / "images").mkdir()
    width = max(6, len(str(n - 1)))
    digest = _ContentHash()
    with open(out / METADATA_NAME, "w") as meta:
        for png, row in _encoded_rows(
            n, seed, size, antialias, allow_overlap, progress, geometry, styles
        ):
            digest.update(png, row)
            file = f"images/{row['index']:0{width}d}.png"
            (out / file).write_bytes(png)
            record = {"file": file, "prompt": row["caption"], "spec": row["spec"], **row}
            meta.write(json.dumps(record) + "\n")
    return digest.hexdigest()


__all__ = [
    "COLOR_WORD_KEEP_PROB",
    "DATASET_FORMATS",
    "FEATURES",
    "MANIFEST_NAME",
    "METADATA_NAME",
    "Caption",
    "build_dataset",
    "encode_png",
    "example",
    "example_rng",
    "sample_caption",
    "sample_caption_parts",
    "save_dataset",
]
