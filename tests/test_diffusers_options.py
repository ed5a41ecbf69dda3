"""`relbench eval` model options (device, dtype, size, --model-arg, --limit), bf16 on CPUs
without native bf16, visible generation failures, and `folder:` image reuse."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tiny_pipelines as tp
from relbench.cli import app
from relbench.runner import (
    ERRORS_DIR,
    FIRST_FAILURE,
    SAMPLES,
    SUMMARY,
    EvalConfig,
    RunFailedError,
    read_samples,
    run_eval,
)

PROMPTS = ["red square is above blue circle", "blue triangle is to the left of red square",
           "red circle is below blue triangle"]


def _prompts(tmp_path: Path, prompts=PROMPTS) -> str:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    return f"file:{path}"


@pytest.fixture(scope="module")
def pixart_dir(tmp_path_factory) -> Path:
    return tp.pixart(tmp_path_factory.mktemp("pixart"))


# ---- options ---------------------------------------------------------------------------------


def test_model_args_parse_json_values_and_refuse_repeats():
    import typer

    from relbench.cli.model_options import build_model_args, parse_model_args

    assert parse_model_args(["steps=3", "guidance=1.5", "force_bf16=true", "name=abc", "x=[1,2]"]) == {
        "steps": 3, "guidance": 1.5, "force_bf16": True, "name": "abc", "x": [1, 2]}
    with pytest.raises(typer.BadParameter, match="KEY=VALUE"):
        parse_model_args(["steps"])
    with pytest.raises(typer.BadParameter, match="given twice"):
        build_model_args("diffusers:x", {}, dtype="float16", extra=["dtype=float32"])
    assert build_model_args("diffusers:x", {"steps": 2}, device="cuda", bf16=True, height=64) == {
        "steps": 2, "device": "cuda", "height": 64, "bf16": True}


def test_a_misspelt_model_arg_is_refused_before_loading_naming_the_ones_it_takes(tmp_path):
    res = CliRunner().invoke(app, ["eval", "--model", "diffusers:/nowhere", "--suite", _prompts(tmp_path),
                                   "--model-arg", "heigth=64", "--out", str(tmp_path / "run")])
    assert res.exit_code == 2
    assert "does not take 'heigth'" in res.output and "did you mean 'height'?" in res.output
    assert "it takes: steps, guidance, device, dtype, height, width" in res.output
    assert not (tmp_path / "run").exists()


def test_eval_runs_a_diffusers_pipeline_at_the_size_and_dtype_given(pixart_dir, tmp_path):
    res = CliRunner().invoke(app, [
        "eval", "--model", f"diffusers:{pixart_dir}", "--suite", _prompts(tmp_path), "--n-images", "1",
        "--steps", "2", "--height", "48", "--width", "48", "--dtype", "float32", "--device", "cpu",
        "--batch-size", "2", "--limit", "2", "--save-images", "--quiet", "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["limit"] == 2 and info["sampling"]["height"] == 48
    assert info["model"]["args"] | {"dtype": "float32", "device": "cpu", "width": 48} == info["model"]["args"]
    rows = read_samples(tmp_path / "run" / SAMPLES)
    assert [r["prompt"] for r in rows] == PROMPTS[:2]  # --limit 2: the first two prompts only
    import cv2

    assert cv2.imread(str(tmp_path / "run" / rows[0]["file"])).shape == (48, 48, 3)
    assert "--limit 2: a smoke run" in res.output


def test_the_leaderboard_refuses_a_limited_run(tmp_path):
    from relbench.leaderboard import load_runs
    from relbench.runner import RunDirError

    run_eval(EvalConfig("oracle", _prompts(tmp_path), seeds=[0], limit=1), tmp_path / "run", progress=False)
    assert len(read_samples(tmp_path / "run" / SAMPLES)) == 1
    with pytest.raises(RunDirError, match="--limit 1 smoke run"):
        load_runs([tmp_path / "run"])


# ---- bf16 on CPUs without native bf16 --------------------------------------------------------


def test_bf16_falls_back_to_float32_on_a_cpu_without_native_bf16(monkeypatch, pixart_dir):
    from relbench import hardware
    from relbench.models import load_model

    monkeypatch.setattr(hardware, "native_bf16", lambda: False)
    hardware._warn_once.cache_clear()
    with pytest.warns(RuntimeWarning, match="about 10x slower"):
        model = load_model(f"diffusers:{pixart_dir}", bf16=True)
    assert model.dtype == "float32" and model.describe()["args"]["dtype_requested"] == "bfloat16"
    assert next(model.pipe.transformer.parameters()).dtype.is_floating_point
    assert str(next(model.pipe.transformer.parameters()).dtype) == "torch.float32"
    with warnings.catch_warnings(record=True):
        assert hardware.fit_dtype("bfloat16", "cpu", force=True) == "bfloat16"
    assert hardware.fit_dtype("bfloat16", "cuda") == "bfloat16"
    monkeypatch.setattr(hardware, "native_bf16", lambda: True)
    assert hardware.fit_dtype("bfloat16", "cpu") == "bfloat16"


def test_bundled_dits_drop_bf16_on_a_cpu_without_native_bf16_unless_forced(monkeypatch):
    from relbench import hardware
    from relbench.cli.model_options import build_model_args

    monkeypatch.setattr(hardware, "native_bf16", lambda: False)
    hardware._warn_once.cache_clear()
    with pytest.warns(RuntimeWarning, match="running float32 instead"):
        assert build_model_args("rtep-micro", {"steps": 2}, bf16=True) == {"steps": 2}
    with pytest.warns(RuntimeWarning, match="anyway as forced"):
        assert build_model_args("rtep-micro", {}, dtype="bfloat16", force_bf16=True) == {"bf16": True}


# ---- failure is visible ----------------------------------------------------------------------


class _Broken:
    name = "broken"

    def __init__(self, fail_after: int = 0):
        self.calls, self.fail_after = 0, fail_after

    def generate(self, requests):
        self.calls += 1
        raise TypeError("forward() got an unexpected keyword argument 'x'")

    def describe(self):
        return {"name": self.name, "args": {}}


def test_a_run_whose_first_images_all_fail_stops_and_saves_the_traceback(tmp_path):
    from relbench.leaderboard import load_runs
    from relbench.runner import RunDirError

    model = _Broken()
    cfg = EvalConfig("broken", _prompts(tmp_path), seeds=[0, 1, 2, 3], batch_size=2, max_initial_failures=4)
    with pytest.raises(RunFailedError, match="first 4 images all failed"):
        run_eval(cfg, tmp_path / "run", progress=False, model=model)
    assert model.calls == 2  # stopped after 4 of 12 images
    trace = (tmp_path / "run" / ERRORS_DIR / FIRST_FAILURE).read_text()
    assert "Traceback (most recent call last)" in trace and "TypeError" in trace
    summary = json.loads((tmp_path / "run" / SUMMARY).read_text())
    assert summary["status"] == "failed" and summary["metrics"]["n_generation_failed"] == 4
    row = read_samples(tmp_path / "run" / SAMPLES)[0]
    assert row["error_type"] == "TypeError" and (tmp_path / "run" / row["traceback"]).is_file()
    assert row["error"].startswith("generation failed: TypeError") and row["traceback"] in row["error"]
    with pytest.raises(RunDirError, match="failed: the first 4 images all failed"):
        load_runs([tmp_path / "run"])


def test_eval_exits_non_zero_when_the_pipeline_rejects_every_call(pixart_dir, tmp_path):
    res = CliRunner().invoke(app, [
        "eval", "--model", f"diffusers:{pixart_dir}", "--suite", _prompts(tmp_path), "--n-images", "4",
        "--steps", "1", "--height", "36", "--width", "36", "--batch-size", "2",
        "--max-initial-failures", "2", "--quiet", "--out", str(tmp_path / "run")])
    assert res.exit_code == 1
    assert "run failed: the first 2 images all failed to generate (first: ValueError" in res.output
    assert (tmp_path / "run" / ERRORS_DIR / FIRST_FAILURE).is_file()
    assert len(read_samples(tmp_path / "run" / SAMPLES)) == 2


# ---- folder: reuse ---------------------------------------------------------------------------


def _folder_with(tmp_path: Path) -> Path:
    import cv2
    import numpy as np

    root = tmp_path / "imgs"
    root.mkdir()
    cv2.imwrite(str(root / "a.png"), np.full((16, 16, 3), 128, np.uint8))
    (root / "metadata.jsonl").write_text(json.dumps({"file": "a.png", "prompt": PROMPTS[0], "seed": 0}) + "\n")
    return root


def test_folder_warns_once_when_one_image_answers_several_requests_and_rows_name_it(tmp_path):
    root = _folder_with(tmp_path)
    suite = _prompts(tmp_path, [PROMPTS[0]] * 3)
    with pytest.warns(UserWarning, match="answers prompt .* more than once") as record:
        run_eval(EvalConfig(f"folder:{root}", suite, seeds=[0]), tmp_path / "run", progress=False)
    assert len([w for w in record if "more than once" in str(w.message)]) == 1
    rows = read_samples(tmp_path / "run" / SAMPLES)
    assert [r.get("source_file") for r in rows] == ["a.png"] * 3
    strict = run_eval(EvalConfig(f"folder:{root}", suite, seeds=[0], model_args={"on_reuse": "error"}),
                      tmp_path / "strict", progress=False)
    assert strict["metrics"]["n_generation_failed"] == 2
    assert "refuses to score it twice" in read_samples(tmp_path / "strict" / SAMPLES)[1]["error"]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["pixart-sigma", "sana", "sd3", "flux"])
def test_every_dit_family_runs_eval_at_a_chosen_size(family, tmp_path):
    path = tp.BUILDERS[family](tmp_path / family)
    summary = run_eval(EvalConfig(f"diffusers:{path}", _prompts(tmp_path), seeds=[0], limit=2, save_images=True,
                                  model_args={"steps": 2, "height": 32, "width": 32}),
                       tmp_path / "run", progress=False)
    assert summary["metrics"]["n_generation_failed"] == 0
    assert summary["run"]["sampling"]["height"] == 32 and summary["run"]["limit"] == 2
    rows = read_samples(tmp_path / "run" / SAMPLES)
    assert len(rows) == 2 and all(r.get("file") for r in rows)
