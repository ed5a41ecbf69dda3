"""`relbench eval`: oracle/chance baselines, resume after a kill, bad model outputs."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from relbench.models import GenerationRequest, load_model
from relbench.runner import SAMPLES, SUMMARY, EvalConfig, read_samples, run_eval


def _prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    lines = [
        {"prompt": "red square is above blue circle"},
        {"prompt": "blue triangle is to the left of red square"},
        {"prompt": "red circle is below and to the right of blue triangle"},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_oracle_scores_perfectly_and_chance_does_not(tmp_path):
    oracle = run_eval(EvalConfig("oracle", "core", seeds=[0, 1]), tmp_path / "o", progress=False)
    chance = run_eval(EvalConfig("chance", "core", seeds=[0, 1]), tmp_path / "c", progress=False)
    assert oracle["metrics"]["n_scored"] == 192
    assert oracle["metrics"]["overall"] == 1.0
    assert chance["metrics"]["overall"] < 0.3
    lo, hi = chance["metrics"]["overall_ci95"]
    assert lo <= chance["metrics"]["overall"] <= hi and hi - lo > 0.01
    run = oracle["run"]
    for key in ("suite_version", "prompt_hash", "scorer_version", "scorer_config_hash", "seeds", "relbench_version"):
        assert run[key] not in (None, "", [])


def test_killed_run_resumes_to_the_same_summary(tmp_path):
    cfg = EvalConfig("chance", f"file:{_prompts_file(tmp_path)}", seeds=[0, 1, 2], batch_size=2)
    full = run_eval(cfg, tmp_path / "full", progress=False)

    part = tmp_path / "part"
    run_eval(cfg, part, progress=False)
    lines = (part / SAMPLES).read_bytes().splitlines(keepends=True)
    (part / SAMPLES).write_bytes(b"".join(lines[:4]) + lines[4][:17])  # killed mid-write
    (part / SUMMARY).unlink()
    resumed = run_eval(cfg, part, progress=False)

    rows = read_samples(part / SAMPLES)
    assert len(rows) == 9 and len({r["sample_id"] for r in rows}) == 9
    assert resumed["metrics"] == full["metrics"]


def test_rerun_with_other_config_is_refused(tmp_path):
    prompts = _prompts_file(tmp_path)
    run_eval(EvalConfig("oracle", f"file:{prompts}", seeds=[0]), tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="different configuration.*seeds"):
        run_eval(EvalConfig("oracle", f"file:{prompts}", seeds=[0, 1]), tmp_path / "r", progress=False)


class _BrokenModel:
    """Returns a wrong-size image, a NaN image and too few images: every row unscorable, run goes on."""

    name = "broken"

    def __init__(self):
        self.calls = 0

    def generate(self, requests):
        self.calls += 1
        if self.calls == 1:
            return [np.zeros((64, 64), np.uint8), np.full((64, 64, 3), np.nan, np.float32)]
        return []

    def describe(self):
        return {"name": self.name, "args": {}, "checkpoint_hash": None}


def test_bad_model_outputs_become_unscorable_rows(tmp_path):
    cfg = EvalConfig("broken", f"file:{_prompts_file(tmp_path)}", seeds=[0], batch_size=2)
    summary = run_eval(cfg, tmp_path / "b", progress=False, model=_BrokenModel())
    rows = read_samples(tmp_path / "b" / SAMPLES)
    assert [r["correct"] for r in rows] == [None, None, None]
    assert "shape (64, 64)" in rows[0]["error"]
    assert "NaN" in rows[1]["error"]
    assert "returned 0 images for 1" in rows[2]["error"]
    assert summary["metrics"]["n_unscorable"] == 3


def test_unknown_model_suggests_a_name():
    with pytest.raises(ValueError, match="did you mean 'oracle'"):
        load_model("oracel")


def test_oracle_is_deterministic_per_seed():
    from relbench.suites import parse_prompt

    model = load_model("oracle")
    spec = parse_prompt("red square is above blue circle")
    a, b, c = model.generate([GenerationRequest("x", 3, spec), GenerationRequest("x", 3, spec),
                              GenerationRequest("x", 4, spec)])
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_eval_cli_writes_the_contract_files(tmp_path):
    from relbench.cli import app

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["eval", "--model", "oracle", "--suite", "core", "--n-images", "1",
                                      "--perturb", "typos", "--out", str(out), "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["metrics"]["overall"] == 1.0
    typos = summary["metrics"]["per_perturbation"]["typos"]
    assert typos["n_scored"] == 96
    assert typos["paired_drop"] == {"drop": 0.0, "ci95": [0.0, 0.0], "n_prompts": 96}
    assert summary["metrics"]["seed_consistency"] == {"k1": 1.0}
    assert json.loads((out / SUMMARY).read_text())["metrics"]["overall"] == 1.0
    assert len(read_samples(out / SAMPLES)) == 192

    bad = CliRunner().invoke(app, ["eval", "--suite", "cor", "--out", str(tmp_path / "x"), "--quiet"])
    assert bad.exit_code == 2 and "did you mean 'core'" in bad.output
