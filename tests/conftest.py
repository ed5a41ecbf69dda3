"""Fixtures shared by test modules: the tiny random DiT the circuit tests hook, and a checkpoint
of it after one training step for the `dit:DIR` command-line tests. torch is imported only by
the fixtures, so test modules that need none of them stay light."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

# One OpenMP/BLAS thread per test process (set before numpy and torch load; a value already in
# the environment wins). The tests' tensors are tiny, and on a machine whose cores are busy,
# threads spin-waiting for each other made torch tests 4-20x slower (a 20-step decoder
# refinement: 14 s with one thread, 67 s with two, on a loaded 2-core machine).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

TINY_DIT: dict[str, Any] = {
    "preset": "nano",
    "head_dim": 8,
    "encoder": "rtep",
    "encoder_dim": 16,
    "max_length": 12,
    "image_size": 16,
    "patch_size": 2,
}
"""A nano DiT (3 layers × 3 heads of dim 8, rtep encoder of dim 16, 8×8 tokens over 16 px)."""


@pytest.fixture(scope="session")
def tiny_dit_config() -> Callable[..., Any]:
    """Builds the `ModelConfig` of `TINY_DIT`; keyword arguments override its fields."""
    from relbench.dit.model import ModelConfig

    return lambda **over: ModelConfig(**{**TINY_DIT, **over})


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_dit_config) -> Any:
    """The `TINY_DIT` pipeline (eps objective) with random weights large enough that attention
    is far from uniform. One per test module, so hooks a module installs stay in it."""
    import torch

    from relbench.dit.sample import DiTPipeline, build_parts

    torch.manual_seed(0)
    model, enc = build_parts(tiny_dit_config())
    for p in model.parameters():
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.15)
    return DiTPipeline(model, enc, "eps")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """`TINY_DIT` after one training step on a fixed two-square image: a checkpoint directory
    that `dit:DIR` loads (tests only read it)."""
    from relbench.dit import TrainConfig, Trainer
    from relbench.dit.train import latest_checkpoint

    def source(step: int, rank: int, batch_size: int) -> tuple[np.ndarray, list[str]]:
        images = np.full((batch_size, 16, 16, 3), 128, np.uint8)
        images[:, 2:6, 2:6] = (255, 0, 0)
        images[:, 9:13, 9:13] = (0, 0, 255)
        return images, ["red square is to the upper left of blue square"] * batch_size

    out = tmp_path_factory.mktemp("tiny-dit")
    cfg = TrainConfig.model_validate({
        "model": TINY_DIT, "steps": 1, "batch_size": 2, "eval_every": 0, "log_every": 1,
        "checkpoint_every": 1,
    })
    Trainer(cfg, out, source=source, progress=False).run()
    return latest_checkpoint(out)
