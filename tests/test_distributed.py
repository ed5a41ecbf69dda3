"""Multi-process runs: eval sharding and merging, DDP training — under `torchrun` and under
`accelerate launch` on CPU (gloo).

The launcher tests start real process groups (about 15–30 s each on 2 cores) and are marked slow:
`python -m pytest -m slow tests/test_distributed.py`. On a machine without GPUs,
`accelerate launch --cpu` starts a single process whatever `--num_processes` says; it is
`--multi_gpu --num_processes N` that starts N processes (through torchrun's elastic agent), and
the gloo process group then runs them on the CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from relbench.distributed import mismatched_ranks, process_info, shard
from relbench.runner import RUN_INFO, SAMPLES, SUMMARY, EvalConfig, read_samples, run_eval

TIMING_FIELDS = {"wall_s", "time_s", "generate_s", "score_s"}
"""Fields that may differ between two runs of the same config (none today)."""

LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture(autouse=True)
def _single_process(monkeypatch):
    """Tests start as one process whatever launched pytest."""
    for name in LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)


def _core_prompts_file(tmp_path: Path, every: int = 12) -> Path:
    """Every `every`-th prompt of the `core` suite (one per relation at the default 12)."""
    from relbench.suites import get_suite

    path = tmp_path / "prompts.jsonl"
    prompts = get_suite("core").prompts[::every]
    path.write_text("".join(json.dumps({"prompt": p.prompt}) + "\n" for p in prompts))
    return path


def _comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in rows]


def _run_json(run_dir: Path) -> dict:
    info = json.loads((run_dir / RUN_INFO).read_text())
    return {k: v for k, v in info.items() if k != "git_commit"}


LAUNCHERS = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node={n}"],
    "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                   "--num_processes={n}", "--num_machines=1", "--mixed_precision=no",
                   "--dynamo_backend=no"],
}
"""How each engine starts N processes that each run `python -m relbench.cli ...`."""


def _launch(launcher: str, args: list[str], cwd: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [part.format(n=nproc) for part in LAUNCHERS[launcher]] + ["-m", "relbench.cli", *args]
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


# ---- pure parts ------------------------------------------------------------------------------

def test_process_info_reads_the_launcher_environment():
    assert process_info({}) == process_info({"RANK": "", "WORLD_SIZE": ""})
    assert not process_info({}).distributed and process_info({}).is_main
    info = process_info({"RANK": "1", "WORLD_SIZE": "3", "LOCAL_RANK": "0"})
    assert (info.rank, info.world_size, info.local_rank, info.is_main) == (1, 3, 0, False)
    with pytest.raises(ValueError, match="RANK=3 with WORLD_SIZE=2"):
        process_info({"RANK": "3", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="WORLD_SIZE='two' is not an integer"):
        process_info({"WORLD_SIZE": "two"})


def test_shards_partition_the_jobs_in_order():
    jobs = list(range(11))
    parts = [shard(jobs, r, 3) for r in range(3)]
    assert sorted(sum(parts, [])) == jobs
    assert parts[1] == [1, 4, 7, 10] and max(map(len, parts)) - min(map(len, parts)) <= 1


def test_digests_name_the_drifted_rank():
    torch = pytest.importorskip("torch")
    from relbench.distributed import tensors_digest

    a = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2, dtype=torch.bfloat16)}
    same = tensors_digest(dict(reversed(list(a.items()))))
    drifted = tensors_digest({**a, "w": a["w"] + 1e-6})
    assert tensors_digest(a) == same != drifted
    assert mismatched_ranks([same, same, drifted, same]) == [2]
    assert mismatched_ranks([same]) == []


# ---- eval shards without a process group (fast, in-process) -----------------------------------

class _Counting:
    """Wraps a model and counts the images it is asked for."""

    def __init__(self, name: str):
        from relbench.models import load_model

        self.inner, self.n = load_model(name), 0
        self.name = self.inner.name

    def generate(self, requests):
        self.n += len(requests)
        return self.inner.generate(requests)

    def describe(self):
        return self.inner.describe()


def test_shards_merge_into_the_single_process_run(tmp_path, monkeypatch):
    cfg = EvalConfig("chance", f"file:{_core_prompts_file(tmp_path)}", seeds=[0, 1, 2],
                     perturbations=["template-2"], batch_size=4)
    single = run_eval(cfg, tmp_path / "single", progress=False)
    expected = read_samples(tmp_path / "single" / SAMPLES)

    # Rank 1 of 2 launched without a rendezvous address: it writes its shard and reports "partial".
    run_dir = tmp_path / "sharded"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    partial = run_eval(cfg, run_dir, progress=False)
    assert partial["status"] == "partial" and partial["shard"]["rank"] == 1
    shard_rows = read_samples(run_dir / "samples.rank1.jsonl")
    assert [r["sample_id"] for r in shard_rows] == [r["sample_id"] for r in expected[1::2]]
    assert not (run_dir / SAMPLES).exists() and not (run_dir / SUMMARY).exists()

    # Rank 0 finishes last, sees every job done, and merges.
    monkeypatch.setenv("RANK", "0")
    merged = run_eval(cfg, run_dir, progress=False)
    assert read_samples(run_dir / SAMPLES) == expected  # canonical order, byte-equal rows
    assert not list(run_dir.glob("samples.rank*"))
    assert merged["metrics"] == single["metrics"]
    assert json.loads((run_dir / SUMMARY).read_text())["metrics"] == single["metrics"]


def test_single_process_run_folds_in_an_unfinished_shard(tmp_path, monkeypatch):
    cfg = EvalConfig("oracle", f"file:{_core_prompts_file(tmp_path)}", seeds=[0, 1], batch_size=3)
    single = run_eval(cfg, tmp_path / "single", progress=False)
    run_dir = tmp_path / "resumed"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    run_eval(cfg, run_dir, progress=False)
    shard0 = run_dir / "samples.rank0.jsonl"
    lines = shard0.read_bytes().splitlines(keepends=True)
    shard0.write_bytes(b"".join(lines[:5]) + lines[5][:20])  # killed mid-write
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")

    model = _Counting("oracle")
    resumed = run_eval(cfg, run_dir, progress=False, model=model)
    assert model.n == 16 - 5  # only what the shard did not finish
    assert read_samples(run_dir / SAMPLES) == read_samples(tmp_path / "single" / SAMPLES)
    assert not list(run_dir.glob("samples.rank*"))
    assert resumed["metrics"] == single["metrics"]


# ---- under a launcher (real gloo process groups) ------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
@pytest.mark.parametrize("model", ["oracle", "chance"])
def test_launched_eval_equals_single_process(tmp_path, model, launcher):
    prompts = _core_prompts_file(tmp_path)
    args = ["eval", "--model", model, "--suite", f"file:{prompts}", "--perturb", "template-2",
            "--n-images", "3", "--batch-size", "4", "--quiet", "--json"]
    cfg = EvalConfig(model, f"file:{prompts}", perturbations=["template-2"], seeds=[0, 1, 2])
    single = run_eval(cfg, tmp_path / "single", progress=False)
    result = _launch(launcher, [*args, "--out", str(tmp_path / "multi")], cwd=tmp_path)

    printed = json.loads(result.stdout)  # rank 0 alone prints
    multi = json.loads((tmp_path / "multi" / SUMMARY).read_text())
    assert printed == multi and multi["status"] == "complete"
    assert multi["metrics"] == single["metrics"]
    assert multi["metrics"]["n_scored"] == 8 * 3
    assert (multi["metrics"]["overall"] == 1.0) == (model == "oracle")
    rows = read_samples(tmp_path / "multi" / SAMPLES)
    single_rows = read_samples(tmp_path / "single" / SAMPLES)
    assert _comparable(rows) == _comparable(single_rows)  # same rows, same order
    assert _run_json(tmp_path / "multi") == _run_json(tmp_path / "single")
    assert not list((tmp_path / "multi").glob("samples.rank*"))


TINY_TRAIN = {
    "model.preset": "nano", "model.head_dim": 8, "model.encoder": "rtep", "model.encoder_dim": 16,
    "model.max_length": 12, "model.image_size": 32, "model.patch_size": 4, "steps": 3,
    "batch_size": 4, "lr": 1e-3, "warmup_steps": 2, "eval_every": 0, "log_every": 1,
    "checkpoint_every": 3,
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_launched_training_averages_gradients_over_ranks(tmp_path, launcher):
    """2 ranks × batch 4 for 3 steps: rank 0 writes one checkpoint (after checking both replicas
    are bitwise identical), and its weights are those of one process that averages, each step,
    the gradients of rank 0's and rank 1's batches."""
    import torch
    from safetensors.torch import load_file

    from relbench.dit.train import TrainConfig, Trainer, _step_generator, renderer_source

    overrides = [f"{k}={json.dumps(v)}" for k, v in TINY_TRAIN.items()]
    out = tmp_path / "run"
    _launch(launcher, ["train", "--out", str(out), "--quiet", *sum((["--set", o] for o in overrides), [])],
            cwd=tmp_path)
    ckpts = sorted((out / "checkpoints").iterdir())
    assert [p.name for p in ckpts] == ["step_0000003"]
    assert json.loads((ckpts[0] / "state.json").read_text())["world_size"] == 2
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3]  # written once, by rank 0
    got = load_file(str(ckpts[0] / "model.safetensors"))

    cfg = TrainConfig.load(None, overrides)
    source = renderer_source(cfg.model.image_size, cfg.seed)
    assert not np.array_equal(source(0, 0, 4)[0], source(0, 1, 4)[0])  # ranks draw different data

    def replay(ranks: tuple[int, ...]) -> dict[str, torch.Tensor]:
        t = Trainer(cfg, tmp_path / f"replay{len(ranks)}", source=source, progress=False)
        for step in range(cfg.steps):
            for g in t.opt.param_groups:
                g["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps)
            t.opt.zero_grad(set_to_none=True)
            for r in ranks:  # DDP: the gradient is the mean of the ranks' gradients
                images, captions = source(step, r, cfg.batch_size)
                loss = t.loss_on(images, captions, _step_generator(cfg.seed, r, step))
                (loss / len(ranks)).backward()
            torch.nn.utils.clip_grad_norm_(t.model.parameters(), cfg.grad_clip)
            t.opt.step()
        return t.model.state_dict()

    want, rank0_only = replay((0, 1)), replay((0,))
    assert set(got) == set(want)
    worst = max(float((got[k] - want[k]).abs().max()) for k in want)
    apart = max(float((rank0_only[k] - want[k]).abs().max()) for k in want)
    assert worst < 1e-5, f"checkpoint differs from the 2-rank gradient average by {worst}"
    assert apart > 1e-4  # the comparison can tell one rank's data from the average
