"""Hostile or careless folders, runs and checkpoints: none of them may hurt relbench or its user.

Each test reproduces one defect of the hardening issue (paths out of a folder, one bad row ending
a batch, racing writers, unsaved images, decompression bombs, trusted checkpoint configs, name
collisions, table injection, invalid JSON output) and checks the guarded behaviour.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from relbench.render import render
from relbench.runner import SAMPLES, SUMMARY, EvalConfig, read_samples, rescore_run, run_eval
from relbench.safety import DirLock, DirLockedError, UnsafePathError, json_line, path_inside
from relbench.scene import ObjectSpec, RelationSpec, Scene, SceneObject
from relbench.scoring import load_detector
from relbench.scoring.folder import score_folder

PROMPT = "red square is to the upper left of blue circle"


def _good_png(path: Path) -> Path:
    scene = Scene((SceneObject("square", "red", 0.3, 0.3), SceneObject("circle", "blue", 0.7, 0.7)))
    cv2.imwrite(str(path), cv2.cvtColor(render(scene, 64), cv2.COLOR_RGB2BGR))
    return path


def _meta(folder: Path, lines: list) -> Path:
    text = b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in lines)
    (folder / "metadata.jsonl").write_bytes(text)
    return folder


def _scores(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def detector():
    return load_detector("default")


def _prompts(tmp_path: Path, ids: list[str] | None = None) -> Path:
    path = tmp_path / "prompts.jsonl"
    texts = ["red square is above blue circle", "blue triangle is to the left of red square"]
    ids = ids or [None] * len(texts)
    path.write_text("".join(json.dumps({"prompt": t, **({"id": i} if i else {})}) + "\n"
                            for t, i in zip(texts, ids)))
    return path


# ------------------------------------------------------------------ 1. paths from rows


def test_path_inside_refuses_escapes_without_telling_whether_they_exist(tmp_path):
    root = tmp_path / "dir"
    root.mkdir()
    (tmp_path / "exists.png").write_bytes(b"x")
    (root / "link.png").symlink_to(tmp_path / "exists.png")
    (root / "dirlink").symlink_to(tmp_path)
    messages = []
    for name in ("../exists.png", "../missing.png", "link.png", "dirlink/exists.png", "/etc/passwd",
                 "", "a\x00b", ".", 7):
        with pytest.raises(UnsafePathError) as e:
            path_inside(root, name)
        messages.append(str(e.value))
    assert messages[0].replace("exists", "missing") == messages[1]  # same text, found or not
    assert all("no such" not in m for m in messages)
    assert path_inside(root, "sub/../ok.png") == (root / "ok.png").resolve()


def test_score_refuses_rows_outside_the_folder(tmp_path, detector):
    outside = _good_png(tmp_path / "outside.png")
    root = tmp_path / "dir"
    root.mkdir()
    _good_png(root / "in.png")
    (root / "link.png").symlink_to(outside)
    _meta(root, [{"file": "../outside.png", "prompt": PROMPT},
                 {"file": str(outside), "prompt": PROMPT},
                 {"file": "link.png", "prompt": PROMPT},
                 {"file": "in.png", "prompt": PROMPT}])
    summary = score_folder(root, detector, progress=False)
    rows = _scores(root / "scores.jsonl")
    assert [r["correct"] for r in rows] == [None, None, None, True]
    assert all("outside the folder" in r["error"] or "absolute" in r["error"] for r in rows[:3])
    assert summary["n"] == 4 and summary["n_scored"] == 1


def test_score_refuses_a_metadata_file_linked_out_of_the_folder(tmp_path, detector):
    other = tmp_path / "other"
    other.mkdir()
    _meta(other, [{"file": "x.png", "prompt": PROMPT, "secret": "s3cr3t"}])
    root = tmp_path / "dir"
    root.mkdir()
    (root / "metadata.jsonl").symlink_to(other / "metadata.jsonl")
    with pytest.raises(UnsafePathError):
        score_folder(root, detector, tmp_path / "out.jsonl", progress=False)
    assert not (tmp_path / "out.jsonl").exists()


def test_folder_model_does_not_read_outside_its_folder(tmp_path):
    from relbench.models.api import GenerationRequest, NoImage
    from relbench.models.folder import FolderModel

    _good_png(tmp_path / "outside.png")
    root = tmp_path / "dir"
    root.mkdir()
    _meta(root, [{"file": "../outside.png", "prompt": PROMPT, "seed": 0}])
    model = FolderModel(root)
    out = model.generate([GenerationRequest(PROMPT, 0)])[0]
    assert isinstance(out, NoImage) and "outside the folder" in out.reason
    before = model.content_hash()
    (tmp_path / "outside.png").write_bytes(b"changed")  # an outside file never enters the hash
    assert FolderModel(root).content_hash() == before


_RUNS: dict = {}


def _saved_run(tmp_path: Path, name: str = "run", ids: list[str] | None = None) -> Path:
    """A finished oracle run with saved images (made once per id list, then copied)."""
    import shutil

    key = tuple(ids or ())
    if key not in _RUNS:
        made = tmp_path / f"template-{name}"
        run_eval(EvalConfig("oracle", f"file:{_prompts(tmp_path, ids)}", seeds=[0],
                            save_images=True), made, progress=False)
        _RUNS[key] = made
    run = tmp_path / name
    shutil.copytree(_RUNS[key], run)
    return run


def test_rescore_never_writes_outside_out(tmp_path):
    run = _saved_run(tmp_path)
    _good_png(tmp_path / "victim.png")
    rows = read_samples(run / SAMPLES)
    rows[0]["file"] = "../victim.png"
    (run / SAMPLES).write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out" / "deep"
    summary = rescore_run(run, "default", out, progress=False)
    new = read_samples(out / SAMPLES)
    assert new[0]["correct"] is None and "outside the folder" in new[0]["error"]
    assert not (tmp_path / "out" / "victim.png").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["deep"]
    assert summary["metrics"]["n_unscorable"] == 1


# ------------------------------------------------------------------ 2. one bad row


BAD_ROWS = [
    {"file": "in.png", "spec": {"subject": {"shape": ["circle"]}, "relation": "above",
                                "reference": {"shape": "square"}}},
    b"\xff\xfe not utf-8",
    {"file": "in.png", "spec": {"subject": {"shape": "circle", "color": "red"}, "relation": "above",
                                "reference": {"shape": "hexagon", "color": "blue"}}},
    {"file": 5, "prompt": PROMPT},
    {"file": "in.png", "prompt": PROMPT, "spec": "nope"},
    [1, 2],
    {"file": "in.png", "prompt": PROMPT},
]


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])  # 2: ~4 s
def test_one_bad_row_never_aborts_score(tmp_path, detector, workers):
    _good_png(tmp_path / "in.png")
    _meta(tmp_path, BAD_ROWS)
    summary = score_folder(tmp_path, detector, workers=workers, progress=False)
    rows = _scores(tmp_path / "scores.jsonl")
    assert len(rows) == len(BAD_ROWS) and summary["n"] == len(BAD_ROWS)
    assert [r["correct"] for r in rows] == [None] * 6 + [True]
    for line, row in enumerate(rows[:6], start=1):
        assert row["error"].startswith(f"metadata.jsonl line {line}:"), row["error"]
    assert "not UTF-8" in rows[1]["error"] and "unknown shape 'hexagon'" in rows[2]["error"]


def test_score_writes_strict_json_and_keeps_its_input(tmp_path, detector):
    _good_png(tmp_path / "in.png")
    (tmp_path / "metadata.jsonl").write_text(
        '{"file": "in.png", "prompt": "%s", "weight": NaN, "w2": Infinity}\n' % PROMPT)
    score_folder(tmp_path, detector, progress=False)
    row = json.loads((tmp_path / "scores.jsonl").read_text(),
                     parse_constant=lambda c: pytest.fail(f"{c} in output"))
    assert row["weight"] is None and row["correct"] is True
    with pytest.raises(ValueError, match="is the input metadata.jsonl"):
        score_folder(tmp_path, detector, tmp_path / "metadata.jsonl", progress=False)
    assert "NaN" in (tmp_path / "metadata.jsonl").read_text()


def test_rows_the_fast_writer_refuses_are_still_written_as_strict_json(tmp_path, detector):
    # Echoed metadata that orjson does not write (an integer past 64 bits, a lone surrogate)
    # goes through the standard library, NaN still becoming null.
    _good_png(tmp_path / "in.png")
    (tmp_path / "metadata.jsonl").write_text(
        '{"file": "in.png", "prompt": "%s", "big": %d, "odd": "\\ud800", "w": NaN}\n'
        '{"file": "in.png", "prompt": "%s", "w": -Infinity, "name": "caf\u00e9"}\n'
        % (PROMPT, 2**70, PROMPT), encoding="utf-8")
    score_folder(tmp_path, detector, progress=False)
    lines = (tmp_path / "scores.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in output"))
            for line in lines]
    assert rows[0]["big"] == 2**70 and rows[0]["odd"] == "\ud800" and rows[0]["w"] is None
    assert rows[1]["w"] is None and rows[1]["name"] == "caf\u00e9"
    assert all(r["correct"] is True for r in rows)
    assert json_line({"x": 0.1, "y": [float("nan")]}) == '{"x":0.1,"y":[null]}\n'
    with pytest.raises(TypeError):
        json_line({"x": {1, 2}})


def test_score_summary_streams_like_summarize(tmp_path, detector):
    from relbench.scoring.metrics import summarize

    _good_png(tmp_path / "in.png")
    _meta(tmp_path, BAD_ROWS + [{"file": "in.png", "prompt": "red square is below blue circle"}])
    summary = score_folder(tmp_path, detector, progress=False)
    expected = summarize(_scores(tmp_path / "scores.jsonl"))
    assert {k: summary[k] for k in expected} == expected


# ------------------------------------------------------------------ 3. one writer per run


def test_second_writer_fails_at_once(tmp_path):
    out = tmp_path / "run"
    with DirLock(out):
        with pytest.raises(DirLockedError, match="in use by another relbench process"):
            run_eval(EvalConfig("oracle", f"file:{_prompts(tmp_path)}", seeds=[0]), out,
                     progress=False)
    assert not (out / SAMPLES).exists()
    run_eval(EvalConfig("oracle", f"file:{_prompts(tmp_path)}", seeds=[0]), out, progress=False)


def test_second_eval_command_exits_2_with_a_clear_message(tmp_path):
    from relbench.cli import app

    out = tmp_path / "run"
    with DirLock(out):
        result = CliRunner().invoke(app, ["eval", "--model", "oracle", "--out", str(out), "--quiet",
                                          "--suite", f"file:{_prompts(tmp_path)}"])
    assert result.exit_code == 2
    assert "in use by another relbench process" in result.output


def test_resume_repairs_duplicate_rows(tmp_path):
    cfg = EvalConfig("chance", f"file:{_prompts(tmp_path)}", seeds=[0, 1])
    out = tmp_path / "run"
    first = run_eval(cfg, out, progress=False)
    text = (out / SAMPLES).read_text()
    (out / SAMPLES).write_text(text + text)  # two writers raced once
    (out / SUMMARY).unlink()
    again = run_eval(cfg, out, progress=False)
    rows = read_samples(out / SAMPLES)
    assert len(rows) == 4 == len({r["sample_id"] for r in rows})
    assert again["metrics"]["n"] == 4 and again["metrics"] == first["metrics"]


# ------------------------------------------------------------------ 4. failed image writes


def test_failed_image_write_is_a_row_error_and_the_run_is_not_complete(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "images").write_text("a file where the images folder goes")  # every write fails
    cfg = EvalConfig("oracle", f"file:{_prompts(tmp_path)}", seeds=[0], save_images=True)
    summary = run_eval(cfg, out, progress=False)
    rows = read_samples(out / SAMPLES)
    assert summary["status"] == "incomplete" and summary["metrics"]["n_images_unsaved"] == 2
    assert all(r["correct"] is None and "image not saved" in r["error"] and "file" not in r
               for r in rows)
    (out / "images").unlink()
    resumed = run_eval(cfg, out, progress=False)  # the unsaved rows are generated again
    rows = read_samples(out / SAMPLES)
    assert resumed["status"] == "complete" and len(rows) == 2
    assert all((out / r["file"]).is_file() for r in rows)


# ------------------------------------------------------------------ 5. decompression bombs


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width × height (its pixel data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path


def test_images_over_the_pixel_limit_are_refused_from_the_header(tmp_path, detector):
    _png_header_only(tmp_path / "bomb.png", 20000, 20000)
    _good_png(tmp_path / "in.png")
    _meta(tmp_path, [{"file": "bomb.png", "prompt": PROMPT}, {"file": "in.png", "prompt": PROMPT}])
    score_folder(tmp_path, detector, progress=False)
    rows = _scores(tmp_path / "scores.jsonl")
    assert "image has 400000000 pixels (20000x20000), over the limit of 40000000" in rows[0]["error"]
    assert rows[1]["correct"] is True
    score_folder(tmp_path, detector, progress=False, max_pixels=1000)  # 64 × 64 > 1000
    assert "over the limit of 1000" in _scores(tmp_path / "scores.jsonl")[1]["error"]


def test_truncated_jpeg_is_corrupt_not_a_grey_image(tmp_path, detector):
    img = cv2.imread(str(_good_png(tmp_path / "in.png")))
    data = cv2.imencode(".jpg", img)[1].tobytes()
    (tmp_path / "cut.jpg").write_bytes(data[:-200])
    _meta(tmp_path, [{"file": "cut.jpg", "prompt": PROMPT}])
    score_folder(tmp_path, detector, progress=False)
    assert "truncated JPEG" in _scores(tmp_path / "scores.jsonl")[0]["error"]


def test_score_cli_takes_max_pixels(tmp_path):
    from relbench.cli import app

    _good_png(tmp_path / "in.png")
    _meta(tmp_path, [{"file": "in.png", "prompt": PROMPT}])
    result = CliRunner().invoke(app, ["score", str(tmp_path), "--quiet", "--json",
                                      "--max-pixels", "100"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["n_unscorable"] == 1


# ------------------------------------------------------------------ 6. checkpoint configs


def _ckpt_dir(tmp_path: Path, **model) -> Path:
    from relbench.dit.checkpoint import FORMAT, FORMAT_VERSION

    path = tmp_path / "ckpt"
    path.mkdir(exist_ok=True)
    cfg = {"format": FORMAT, "version": FORMAT_VERSION, "objective": "x0",
           "model": {"preset": "nano", "head_dim": 8, "encoder": "rte", "encoder_dim": 16,
                     "image_size": 32, "patch_size": 4, **model},
           "files": {"ema.safetensors": "0" * 64}}
    (path / "config.json").write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize("model, match", [
    ({"encoder": "t5:some-org/some-hub-model"}, "must be a local directory"),
    ({"image_size": 10**9}, "model.image_size"),
    ({"encoder_dim": 10**8}, "model.encoder_dim"),
    ({"head_dim": "wide"}, "model.head_dim"),
])
def test_checkpoint_config_is_validated_before_anything_is_built(tmp_path, model, match):
    from relbench.dit.checkpoint import CheckpointError
    from relbench.dit.sample import load_pipeline

    with pytest.raises(CheckpointError, match=match):
        load_pipeline(_ckpt_dir(tmp_path, **model))


def test_checkpoint_file_names_stay_inside_the_checkpoint(tmp_path):
    from relbench.dit.checkpoint import CheckpointError, read_meta

    path = _ckpt_dir(tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["files"] = {"../../etc/passwd": "0" * 64}
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="invalid files"):
        read_meta(path)
    (path / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        read_meta(path)


def test_checkpoint_hash_covers_the_config_and_bundled_models_verify_untouched():
    from relbench.dit.checkpoint import checkpoint_hash, read_meta, sampling_hash
    from relbench.models.dit_adapter import BUNDLED_ROOT

    for path in sorted(p for p in Path(BUNDLED_ROOT).iterdir() if (p / "config.json").is_file()):
        before = (path / "config.json").read_bytes()
        meta = read_meta(path)  # the bundled configs pass validation as they are
        digest = checkpoint_hash(meta)
        changed = json.loads(before)
        changed["sampling"] = {"shift": 1.5}
        assert checkpoint_hash(changed) != digest != sampling_hash(meta["files"])
        assert (path / "config.json").read_bytes() == before


@pytest.mark.slow  # imports transformers (~10 s)
def test_t5_loads_never_reach_a_network(tmp_path):
    from relbench.dit.encoders import load_t5

    with pytest.raises(ValueError, match="not available locally"):
        load_t5("some-org/not-a-local-model-xyz")


# ------------------------------------------------------------------ 7. saved-image names


def test_saved_image_names_are_unique_and_rescore_scores_the_right_image(tmp_path):
    run = _saved_run(tmp_path, ids=["a/b", "a_b"])
    rows = read_samples(run / SAMPLES)
    assert rows[0]["file"] != rows[1]["file"]
    out = tmp_path / "rescored"
    summary = rescore_run(run, "default", out, progress=False)
    assert summary["metrics"]["overall"] == 1.0
    new = read_samples(out / SAMPLES)
    for old, row in zip(rows, new):
        assert (out / row["file"]).read_bytes() == (run / old["file"]).read_bytes()


def test_a_failed_rescore_leaves_nothing_behind(tmp_path, monkeypatch):
    import relbench.runner as runner

    run = _saved_run(tmp_path)
    out = tmp_path / "rescored"

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner, "_copy_image", broken)
    with pytest.raises(OSError):
        rescore_run(run, "default", out, progress=False)
    assert not out.exists()
    monkeypatch.undo()
    assert rescore_run(run, "default", out, progress=False)["status"] == "complete"


def test_rescore_refuses_rows_of_the_wrong_types(tmp_path):
    from relbench.runner import RunDirError

    run = _saved_run(tmp_path)
    rows = read_samples(run / SAMPLES)
    rows[1]["sample_id"] = {"not": "a string"}
    (run / SAMPLES).write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(RunDirError, match="line 2: sample_id"):
        rescore_run(run, "default", tmp_path / "out", progress=False)


def test_a_killed_rescore_is_started_again(tmp_path):
    run = _saved_run(tmp_path)
    out = tmp_path / "rescored"
    rescore_run(run, "default", out, progress=False)
    (out / SUMMARY).unlink()  # killed before its summary
    assert rescore_run(run, "default", out, progress=False)["status"] == "complete"


# ------------------------------------------------------------------ 8. table injection


def test_leaderboard_refuses_markdown_in_names_and_quotes_formulas(tmp_path):
    from relbench.leaderboard import csv_cell, load_runs
    from relbench.runner import RunDirError

    run = tmp_path / "run"
    run_eval(EvalConfig("oracle", f"file:{_prompts(tmp_path)}", seeds=[0]), run, progress=False)
    info = json.loads((run / "run.json").read_text())
    for name in ("<img src=x onerror=alert(1)>", "a\n| b", "[x](javascript:alert(1))"):
        info["model"]["name"] = name
        (run / "run.json").write_text(json.dumps(info))
        with pytest.raises(RunDirError, match="model name"):
            load_runs([run])
    assert [csv_cell(x) for x in ("=1+1", "+1", "-cmd", "@SUM(A1)", "ok", -0.5)] == [
        "'=1+1", "'+1", "'-cmd", "'@SUM(A1)", "ok", -0.5]


# ------------------------------------------------------------------ 9. smaller ones


def test_duplicate_and_out_of_range_seeds_are_refused(tmp_path):
    prompts = f"file:{_prompts(tmp_path)}"
    with pytest.raises(ValueError, match="seed 1 is given twice"):
        run_eval(EvalConfig("oracle", prompts, seeds=[0, 1, 1]), tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="seed -1"):
        run_eval(EvalConfig("oracle", prompts, seeds=[-1]), tmp_path / "b", progress=False)
    assert not (tmp_path / "a").exists()


def test_suite_file_with_an_unknown_shape_is_refused_at_load_with_its_line(tmp_path):
    from relbench.suites import load_suite_file

    spec = RelationSpec(ObjectSpec("square", "red"), "above",
                        ObjectSpec("circle", "blue")).to_dict()
    spec["reference"]["shape"] = "hexagon"
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "x", "spec": spec}) + "\n")
    with pytest.raises(ValueError, match=r"p\.jsonl:1: unknown shape 'hexagon'"):
        load_suite_file(path)


def test_score_reports_a_full_disk_in_one_line(tmp_path, detector, monkeypatch):
    import builtins

    _good_png(tmp_path / "in.png")
    _meta(tmp_path, [{"file": "in.png", "prompt": PROMPT}])
    real_open = builtins.open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, _):
            raise OSError(28, "No space left on device")

        def __getattr__(self, k):
            return getattr(self.f, k)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    def fake_open(file, mode="r", *a, **k):
        f = real_open(file, mode, *a, **k)
        return Full(f) if str(file).endswith("scores.jsonl") and "w" in mode else f

    monkeypatch.setattr(builtins, "open", fake_open)
    with pytest.raises(OSError, match=r"cannot write .*scores\.jsonl: No space left on device"):
        score_folder(tmp_path, detector, progress=False)


def test_nan_shift_and_guidance_are_refused():
    from types import SimpleNamespace

    from relbench.models.dit_adapter import DiTModel

    pipe = SimpleNamespace(objective="flow", shift=1.0)  # refused before the pipeline is used
    for kwargs in ({"shift": float("nan")}, {"guidance": float("inf")}):
        with pytest.raises(ValueError, match="must be a finite number"):
            DiTModel("tiny", pipe, **kwargs)


def test_all_nan_weights_are_refused():
    import torch
    from torch import nn

    from relbench.dit.checkpoint import CheckpointError, load_into

    module = nn.Linear(2, 2)
    bad = {k: torch.full_like(v, float("nan")) for k, v in module.state_dict().items()}
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_into(module, bad, "ema.safetensors")


def test_score_memory_is_flat_in_the_number_of_rows(tmp_path, detector):
    import tracemalloc

    def peak(n: int) -> int:
        folder = tmp_path / str(n)
        folder.mkdir()
        _meta(folder, [{"file": f"missing{i}.png", "prompt": PROMPT, "pad": "x" * 2000}
                       for i in range(n)])
        tracemalloc.start()
        score_folder(folder, detector, progress=False)
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return top

    small, large = peak(50), peak(600)
    assert large < small + 500_000, (small, large)  # a list of 600 rows would add > 1.2 MB
