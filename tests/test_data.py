"""Training-set export: captions, reproducibility, and `relbench data build`."""

import json
import random
from collections import Counter

import datasets
import numpy as np
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from relbench.cli.data import app as data_app
from relbench.data import (
    COLOR_WORD_KEEP_PROB,
    MANIFEST_NAME,
    METADATA_NAME,
    build_dataset,
    example,
    sample_caption,
    sample_caption_parts,
    save_dataset,
)
from relbench.scene import apart
from relbench.render import render
from relbench.scene import SHAPES, TRAIN_COLORS, RelationSpec, Scene, SceneObject, random_scene
from relbench.suites.phrases import ALL_PHRASES, PHRASES


def parse_caption(caption: str) -> tuple[str | None, str, str, str | None, str]:
    """Split "{c1} {s1} is {phrase} {c2} {s2}" (colour words optional) into its parts."""
    words = caption.split(" ")
    assert "" not in words, f"double or edge space in {caption!r}"
    c1 = words.pop(0) if words[0] in TRAIN_COLORS else None
    s1 = words.pop(0)
    assert words.pop(0) == "is"
    s2 = words.pop()
    c2 = words.pop() if words[-1] in TRAIN_COLORS else None
    return c1, s1, " ".join(words), c2, s2


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_caption_parses_and_matches_the_scene(seed):
    rng = random.Random(seed)
    scene = random_scene(rng)
    parts = sample_caption_parts(scene, rng)
    c1, s1, phrase, c2, s2 = parse_caption(parts.text)
    subj, ref = scene.objects
    assert (s1, s2) == (subj.shape, ref.shape)
    assert c1 in (None, subj.color) and c2 in (None, ref.color)
    assert parts.relation == scene.relation(0, 1)
    assert phrase == parts.phrase and phrase in PHRASES[parts.relation]


def test_colour_words_dropped_about_half_the_time():
    rng = random.Random(0)
    scene = random_scene(rng)
    n = 4000
    parsed = [parse_caption(sample_caption(scene, rng)) for _ in range(n)]
    kept1 = sum(p[0] is not None for p in parsed) / n
    kept2 = sum(p[3] is not None for p in parsed) / n
    both = sum(p[0] is not None and p[3] is not None for p in parsed) / n
    # Binomial standard error at n = 4000 is 0.008; allow 5 of them.
    for rate in (kept1, kept2):
        assert abs(rate - COLOR_WORD_KEEP_PROB) < 0.04
    assert abs(both - COLOR_WORD_KEEP_PROB**2) < 0.04  # kept independently


def test_phrases_uniform_within_relation():
    subj = SceneObject("circle", "red", 0.2, 0.2)
    scene = Scene((subj, SceneObject("square", "blue", 0.6, 0.7)))
    rng = random.Random(1)
    counts = Counter(sample_caption_parts(scene, rng).phrase for _ in range(3000))
    assert set(counts) == set(PHRASES["upper_left"])
    assert all(abs(c / 3000 - 1 / 3) < 0.05 for c in counts.values())


def test_caption_rejects_scenes_without_a_relation():
    same = Scene((SceneObject("circle", "red", 0.5, 0.5), SceneObject("square", "blue", 0.5, 0.5)))
    with pytest.raises(ValueError, match="coincide"):
        sample_caption(same, random.Random(0))


def test_build_is_reproducible_and_rows_regenerate_alone():
    a = build_dataset(24, size=64, seed=7)
    b = build_dataset(24, size=64, seed=7)
    c = build_dataset(24, size=64, seed=8)
    raw = lambda ds: ds.cast_column("image", datasets.Image(decode=False))["image"]  # noqa: E731
    assert [r["bytes"] for r in raw(a)] == [r["bytes"] for r in raw(b)]
    assert a["caption"] == b["caption"]
    assert a["caption"] != c["caption"]
    row = example(13, seed=7, size=64)
    assert (np.asarray(a[13]["image"]) == row["image"]).all()
    assert a[13]["caption"] == row["caption"]


def test_rows_carry_the_full_spec_and_scene():
    ds = build_dataset(30, size=64, seed=2)
    phrases = {p for _, p in ALL_PHRASES}
    for r in ds:
        spec = RelationSpec.from_dict(r["spec"])
        scene = Scene.from_dict(r["scene"])
        subj, ref = scene.objects
        assert spec.subject.shape == r["subject_shape"] == subj.shape
        assert spec.reference.color == r["reference_color"] == ref.color
        assert (r["subject_x"], r["reference_y"]) == (subj.x, ref.y)
        assert subj.shape != ref.shape and {subj.color, ref.color} == set(TRAIN_COLORS)
        assert spec.relation == r["relation"] == scene.relation(0, 1)
        assert r["phrase"] in phrases and r["phrase"] in r["caption"]
        assert (np.asarray(r["image"]) == render(scene, 64)).all()
        assert all(s in SHAPES for s in (subj.shape, ref.shape))


def test_antialias_option():
    for r in build_dataset(10, size=64, seed=3, antialias=True):
        truth = render(Scene.from_dict(r["scene"]), 64, antialias=True)
        assert (np.asarray(r["image"]) == truth).all()


def test_no_overlap_option_keeps_objects_apart():
    rows = [example(i, seed=3, size=64, allow_overlap=False) for i in range(3000)]
    for r in rows:
        scene = Scene.from_dict(r["scene"])
        assert apart(*scene.objects), f"row {r['index']} overlaps"


@pytest.mark.parametrize("n", [0, -1])
def test_bad_arguments_are_named(n, tmp_path):
    with pytest.raises(ValueError, match="positive integer"):
        build_dataset(n)
    with pytest.raises(ValueError, match="out of range"):
        build_dataset(2, size=20)
    with pytest.raises(ValueError, match="format"):
        save_dataset(tmp_path / "x", 2, fmt="parquet")  # type: ignore[arg-type]


def cli() -> typer.Typer:
    """A local root app holding `data`, as `relbench` does (independent of the other commands)."""
    root = typer.Typer()
    root.add_typer(data_app, name="data")
    return root


def test_cli_build_hf_and_reload(tmp_path):
    out = tmp_path / "ds"
    args = ["data", "build", "--n", "6", "--size", "64", "--seed", "5", "--out", str(out)]
    args += ["--quiet"]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    ds = datasets.load_from_disk(str(out))
    assert len(ds) == 6 and ds[2]["caption"] == example(2, seed=5, size=64)["caption"]
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    expected = {"n": 6, "size": 64, "seed": 5, "antialias": False, "allow_overlap": True,
                "geometry": "relbench"}
    assert manifest["args"] == expected
    assert len(manifest["content_sha256"]) == 64 and manifest["relbench_version"]

    # A non-empty output is refused, and replaced with --overwrite.
    again = CliRunner().invoke(cli(), args)
    assert again.exit_code != 0 and "not empty" in again.output
    again = CliRunner().invoke(cli(), args + ["--overwrite"])
    assert again.exit_code == 0, again.output
    # Same seed, same hash.
    assert json.loads((out / MANIFEST_NAME).read_text()) == manifest


def test_overwrite_refuses_foreign_directories(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="refusing"):
        save_dataset(tmp_path, 2, size=32, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_cli_build_imagefolder(tmp_path):
    out = tmp_path / "folder"
    args = ["data", "build", "--n", "5", "--size", "32", "--seed", "1", "--out", str(out)]
    args += ["--format", "imagefolder", "--no-overlap"]
    result = CliRunner().invoke(cli(), args)
    assert result.exit_code == 0, result.output
    assert "wrote 5 images" in result.output
    rows = [json.loads(line) for line in (out / METADATA_NAME).read_text().splitlines()]
    assert len(rows) == 5
    for i, row in enumerate(rows):
        truth = example(i, seed=1, size=32, allow_overlap=False)
        assert row["prompt"] == truth["caption"] and row["spec"] == truth["spec"]
        image = np.asarray(Image.open(out / row["file"]).convert("RGB"))
        assert (image == truth["image"]).all()
    # The content hash does not depend on the on-disk format.
    hf = save_dataset(tmp_path / "hf", 5, size=32, seed=1, allow_overlap=False)
    folder = json.loads((out / MANIFEST_NAME).read_text())
    assert folder["format"] == "imagefolder" and hf["content_sha256"] == folder["content_sha256"]
