"""`relbench score DIR` end to end through typer's CliRunner."""

from __future__ import annotations

import importlib
import json

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from relbench.render import render
from relbench.scene import ObjectSpec, RelationSpec, Scene, SceneObject


def _app() -> typer.Typer:
    try:
        from relbench.cli import app

        return app
    except ImportError:  # other commands not written yet: mount ours alone
        from relbench.cli.score import score

        local = typer.Typer()
        local.command("score")(score)
        local.command("noop")(lambda: None)
        return local


@pytest.fixture
def folder(tmp_path):
    scene = Scene((SceneObject("square", "red", 0.3, 0.3), SceneObject("circle", "blue", 0.7, 0.7)))
    cv2.imwrite(str(tmp_path / "good.png"), cv2.cvtColor(render(scene, 128), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "gray.png"), np.full((64, 64), 90, np.uint8))
    (tmp_path / "corrupt.png").write_bytes(b"junk")
    spec = RelationSpec(ObjectSpec("square", "red"), "upper_left", ObjectSpec("circle", "blue"))
    lines = [
        json.dumps({"file": "good.png", "prompt": "red square is to the upper left of blue circle",
                    "seed": 7}),
        json.dumps({"file": "good.png", "spec": spec.to_dict(), "id": "explicit"}),
        json.dumps({"file": "good.png", "prompt": "red square is below blue circle"}),
        "{not json",
        json.dumps({"file": "missing.png", "prompt": "red square is above blue circle"}),
        json.dumps({"file": "gray.png", "prompt": "red square is above blue circle"}),
        json.dumps({"file": "corrupt.png", "prompt": "red square is above blue circle"}),
        json.dumps({"file": "good.png", "prompt": ""}),
        json.dumps({"file": "good.png", "prompt": "zorp blarg"}),
        "",
        json.dumps({"file": "good.png", "prompt": "red square left of blue circle"}),
    ]
    (tmp_path / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_score_folder_rows_and_summary(folder):
    result = CliRunner().invoke(_app(), ["score", str(folder), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    rows = [json.loads(line) for line in (folder / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 10  # every non-blank line, the malformed one included
    assert [r["correct"] for r in rows] == [True, True, False] + [None] * 6 + [False]
    assert rows[0]["seed"] == 7 and rows[1]["id"] == "explicit"  # input fields kept
    assert rows[0]["spec"]["relation"] == "upper_left" and rows[0]["dx"] < 0
    assert "found it upper_left" in rows[2]["reason"] and rows[2]["detections"]
    assert rows[3]["line"] == 4 and "line 4" in rows[3]["error"]
    assert "no such file" in rows[4]["error"]
    assert "grayscale image; colour is needed" in rows[5]["error"]
    assert "corrupt" in rows[6]["error"]
    assert "empty prompt" in rows[7]["error"]
    assert rows[8]["error"] and rows[8]["correct"] is None
    assert (summary["n"], summary["n_scored"], summary["n_unscorable"]) == (10, 4, 6)
    assert summary["overall"] == 0.5
    assert summary["detector"]["name"] == "default"
    assert len(summary["detector"]["config_hash"]) == 64


def test_out_option_and_missing_metadata(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("o") / "s.jsonl"
    result = CliRunner().invoke(_app(), ["score", str(folder), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 10 and "accuracy 0.500" in result.stdout
    empty = tmp_path_factory.mktemp("empty")
    result = CliRunner().invoke(_app(), ["score", str(empty), "--quiet"])
    assert result.exit_code == 2 and "metadata.jsonl" in result.output


def test_unknown_detector(folder):
    result = CliRunner().invoke(_app(), ["score", str(folder), "--detector", "defalt", "--quiet"])
    assert result.exit_code == 2 and "did you mean 'default'" in result.output


def test_a_folder_scores_the_same_in_any_order(tmp_path):
    """Each image's row is the same whatever was scored before it in the process: the first
    blurred render with a background and the later ones are read alike (scorer 2.2.0)."""
    import importlib
    import random
    import sys
    from pathlib import Path

    from relbench.scoring import load_detector, score_folder

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    scorer = importlib.import_module("scorer")
    rng, nrng = random.Random(5), np.random.default_rng(5)
    rows = []
    for i in range(12):
        image, scene = scorer.make_image("blur", rng, nrng)
        cv2.imwrite(str(tmp_path / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        rows.append(json.dumps({"file": f"{i}.png", "spec": scorer.specs_for(scene)[0].to_dict()}))
    results = []
    for order in (rows, rows[::-1]):
        (tmp_path / "metadata.jsonl").write_text("\n".join(order) + "\n")
        out = tmp_path / "scores.jsonl"
        score_folder(tmp_path, load_detector("default"), out, progress=False)
        scored = [json.loads(line) for line in out.read_text().splitlines()]
        results.append({r["file"]: (r["detections"], r["correct"]) for r in scored})
    assert results[0] == results[1]
    assert sum(correct for _, correct in results[0].values()) >= 10


@pytest.mark.parametrize("batch_rows", [1, 3, 64])
def test_rows_in_batches_are_the_rows_one_by_one(folder, monkeypatch, batch_rows):
    """`relbench score` scores a batch of rows at a time; every row, error rows included, is
    `score_row`'s, in input order, whatever the batch size (here 1, 3 and larger than the
    folder) and with a tiny image that fails inside the scorer between good ones."""
    from relbench.scoring import folder as folder_mod
    from relbench.scoring import load_detector, score_folder, score_row

    detect_mod = importlib.import_module("relbench.scoring.detect")

    cv2.imwrite(str(folder / "tiny.png"), np.zeros((5, 5, 3), np.uint8))
    lines = (folder / "metadata.jsonl").read_text().splitlines()
    lines.insert(2, json.dumps({"file": "tiny.png", "prompt": "red square above blue circle"}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(detect_mod, "BATCH_ROWS", batch_rows)
    det = load_detector("default")
    score_folder(folder, det, folder / "scores.jsonl", progress=False)
    rows = [json.loads(line) for line in (folder / "scores.jsonl").read_text().splitlines()]
    expected = []
    for n, row, err in folder_mod.read_metadata(folder / "metadata.jsonl"):
        one = folder_mod.error_row({"line": n}, err) if row is None else score_row(row, folder, det)
        if one.get("error") and not one["error"].startswith("metadata.jsonl line"):
            one["error"] = f"metadata.jsonl line {n}: {one['error']}"
        expected.append(json.loads(json.dumps(one)))
    assert rows == expected and len(rows) == 11
    assert rows[2]["error"] == "metadata.jsonl line 3: image too small to score: 5x5"
    assert [r["correct"] for r in rows][:4] == [True, True, None, False]


class _BatchScorer:
    """A third-party scorer with its own `score_batch`: a verdict from the built-in detector, or
    an error for images narrower than 100 px; `bad_length` returns one result too few."""

    name, version, config_hash = "batchy", "1.0.0", "0" * 12

    def __init__(self, bad_length: bool = False) -> None:
        from relbench.scoring import load_detector

        self.inner, self.bad_length, self.calls = load_detector("default"), bad_length, []

    def describe(self):
        return {"name": self.name, "version": self.version, "config_hash": self.config_hash}

    def score(self, image, spec):  # pragma: no cover - relbench score calls score_batch
        raise AssertionError("score_batch is used when a scorer has one")

    def score_batch(self, images, specs):
        self.calls.append(len(images))
        out = [ValueError("too narrow") if im.shape[1] < 100 else self.inner.score(im, sp)
               for im, sp in zip(images, specs)]
        return out[:-1] if self.bad_length else out


def test_a_scorer_with_its_own_batches(folder, monkeypatch):
    from relbench.scoring import score_folder

    detect_mod = importlib.import_module("relbench.scoring.detect")
    monkeypatch.setattr(detect_mod, "BATCH_ROWS", 2)
    cv2.imwrite(str(folder / "narrow.png"), np.full((64, 64, 3), 90, np.uint8))
    lines = (folder / "metadata.jsonl").read_text().splitlines()
    lines.insert(1, json.dumps({"file": "narrow.png", "prompt": "red square above blue circle"}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    scorer = _BatchScorer()
    summary = score_folder(folder, scorer, folder / "s.jsonl", progress=False)
    rows = [json.loads(line) for line in (folder / "s.jsonl").read_text().splitlines()]
    assert rows[1]["error"] == "metadata.jsonl line 2: too narrow" and rows[1]["correct"] is None
    assert [r["correct"] for r in rows][:4] == [True, None, True, False]
    assert max(scorer.calls) == 2 and summary["n_scored"] == 4
    broken = _BatchScorer(bad_length=True)
    score_folder(folder, broken, folder / "b.jsonl", progress=False)
    rows = [json.loads(line) for line in (folder / "b.jsonl").read_text().splitlines()]
    assert all(r["correct"] is None for r in rows)
    assert "score_batch gave 1 results for 2 images" in rows[0]["error"]
