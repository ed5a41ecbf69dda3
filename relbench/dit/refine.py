"""Decoder refinement: fit a latent DiT's autoencoder decoder to the DiT's own last-step outputs.

Why: the autoencoder is trained (and frozen) before the DiT, on the latents of real images. A
sampler's final latent is not such a latent: with the flow-path Euler sampler it is the guided x0
prediction made from the last noise level (σ ≈ 0.19 at 14 steps, shift 3), and a small DiT's
predictions there are a little off, most visibly at a circle's edge, which the frozen decoder
then draws as a rounded square (the scorer's misses on the bundled models were mostly circles
found as squares, with a circle's area). Refinement shows the decoder exactly those inputs:

    z0 = E(x),  z_σ = (1 − σ)·z0 + σ·ε,  ẑ0 = guided x0 prediction of the DiT at (z_σ, σ, caption)
    loss = ‖D(ẑ0) − x‖² + ‖D(z0) − x‖²,   σ ~ U(sigma_min, sigma_max)

with the caption that x was rendered from and the sampler's guidance scale. Only the decoder
moves: the encoder, and so the latent space the DiT was trained in, stays as it was, and the
transformer's weights are untouched. It is cheap (a no-grad DiT forward and a small decoder
backward per step) and is recorded in the checkpoint's `decoder_refine` section.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch.nn import functional as F

from relbench.dit.autoencoder import to_tensor
from relbench.dit.objectives import FLOW_PATH, NUM_TRAIN_TIMESTEPS, predicted_x0
from relbench.dit.sample import DiTPipeline

Batches = Callable[[int], tuple[np.ndarray, list[str]]]
"""step → (images (B, H, W, 3) uint8, their captions)."""


class RefineConfig(BaseModel):
    """Settings of `refine_decoder` (the defaults are the bundled models' refinement)."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(600, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(5e-4, gt=0.0)
    sigma_min: float = Field(0.1, gt=0.0, lt=1.0)
    """Lowest noise level the predictions are made from."""
    sigma_max: float = Field(0.45, gt=0.0, lt=1.0)
    """Highest noise level (the 14-step, shift-3 sampler's last two steps start at 0.19 and 0.31)."""
    guidance: float = Field(4.5, ge=0.0)
    """Classifier-free guidance scale of the predictions (the sampler's default)."""
    seed: int = 0

    @model_validator(mode="after")
    def _range(self) -> RefineConfig:
        if self.sigma_min > self.sigma_max:
            raise ValueError(f"sigma_min {self.sigma_min} is above sigma_max {self.sigma_max}")
        return self


def refine_decoder(
    pipe: DiTPipeline,
    batches: Batches,
    config: RefineConfig | None = None,
    *,
    log: Callable[[dict[str, Any]], None] | None = None,
    log_every: int = 50,
) -> list[float]:
    """Fine-tune `pipe.autoencoder.decoder` in place (see the module docstring); returns the
    per-step losses. `batches(k)` gives the k-th batch of rendered images and their captions."""
    cfg = config or RefineConfig()
    ae = pipe.autoencoder
    if ae is None:
        raise ValueError("decoder refinement needs a latent-space DiT (this one works in pixels)")
    if pipe.objective not in FLOW_PATH:
        raise ValueError(
            f"decoder refinement needs a flow-path objective ({', '.join(FLOW_PATH)}), not {pipe.objective!r}"
        )
    gen = torch.Generator().manual_seed(cfg.seed)
    null_s, null_m = pipe.encoder.null()
    decoder = ae.decoder
    opt = torch.optim.Adam(decoder.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    pipe.model.eval()
    flags = [p.requires_grad for p in decoder.parameters()]
    decoder.requires_grad_(True).train()
    losses: list[float] = []
    start = time.perf_counter()
    try:
        for step in range(cfg.steps):
            images, captions = batches(step)
            x = to_tensor(images)  # (B, 3, H, W)
            z_hat, z0 = _predicted_latents(pipe, x, captions, cfg, gen, (null_s, null_m))
            loss = F.mse_loss(ae.decode(z_hat), x) + F.mse_loss(ae.decode(z0), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if log is not None and (step + 1) % log_every == 0:
                recent = float(np.mean(losses[-log_every:]))
                log({"refine_step": step + 1, "loss": recent, "wall_s": round(time.perf_counter() - start, 3)})
    finally:
        decoder.eval()
        for p, flag in zip(decoder.parameters(), flags):
            p.requires_grad_(flag)
    return losses


@torch.no_grad()
def _predicted_latents(
    pipe: DiTPipeline,
    x: torch.Tensor,
    captions: list[str],
    cfg: RefineConfig,
    gen: torch.Generator,
    null: tuple[torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(guided x0 predictions from noised latents of x, the clean latents of x)."""
    ae = pipe.autoencoder
    assert ae is not None
    z0 = ae.encode(x)  # (B, C, h, w)
    b = z0.shape[0]
    sigma = cfg.sigma_min + (cfg.sigma_max - cfg.sigma_min) * torch.rand(b, generator=gen)  # (B,)
    sv = sigma.view(b, 1, 1, 1)
    z_s = (1 - sv) * z0 + sv * torch.randn(z0.shape, generator=gen)
    states, mask = pipe.encoder.encode(captions)  # (B, L, D), (B, L)
    states = torch.cat([states, null[0].expand(b, -1, -1)])
    mask = torch.cat([mask, null[1].expand(b, -1)])
    t = torch.cat([sigma, sigma]) * NUM_TRAIN_TIMESTEPS
    out = pipe.model(torch.cat([z_s, z_s]), t, states, mask)  # (2B, C, h, w)
    cond, uncond = out.chunk(2)
    return predicted_x0(pipe.objective, uncond + cfg.guidance * (cond - uncond), z_s, sv), z0


def refine_checkpoint(
    checkpoint: Path,
    out: Path,
    config: RefineConfig | None = None,
    *,
    eval_prompts: int = 0,
    log: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Refine the decoder of a training (or bundled) checkpoint and write the result to `out`: the
    same files with a new autoencoder.safetensors and a `decoder_refine` section in config.json
    (settings, source autoencoder hash, losses, wall time and, with `eval_prompts` > 0, strict
    accuracy on that many evenly spaced `core` prompts, seed 0, before and after). Returns that
    section. Scenes come from the checkpoint's own training layouts at its final step."""
    from relbench.dit.checkpoint import Checkpoint, read_checkpoint, read_meta, write_checkpoint
    from relbench.dit.layouts import LayoutConfig
    from relbench.dit.sample import load_pipeline
    from relbench.dit.train import TrainConfig, evaluate_suite, renderer_source

    cfg = config or RefineConfig()
    checkpoint, out = Path(checkpoint), Path(out)
    ckpt = read_checkpoint(checkpoint)
    if "autoencoder" not in ckpt.weights:
        raise ValueError(f"{checkpoint}: no autoencoder.safetensors (a pixel-space model has no decoder)")
    pipe = load_pipeline(checkpoint)
    train_cfg = ckpt.meta.get("train")
    bundle = ckpt.meta.get("bundle") or {}
    state = ckpt.state or {"step": bundle.get("step", 0), "wall_s": bundle.get("wall_s")}  # bundled: no state.json
    step = int(state["step"])
    layout = TrainConfig.model_validate(train_cfg).layout_at(step) if train_cfg else LayoutConfig()
    source = renderer_source(pipe.model.config.image_size, cfg.seed, layout)
    # The curriculum as it stood at the checkpoint's step; the rank slot keeps each batch distinct.
    batches: Batches = lambda k: source(step, 50_000 + k, cfg.batch_size)  # noqa: E731

    def accuracy() -> float:
        return evaluate_suite(pipe, "core", n_prompts=eval_prompts, seeds=(0,))["strict_accuracy"]

    before = accuracy() if eval_prompts else None
    start = time.perf_counter()
    losses = refine_decoder(pipe, batches, cfg, log=log)
    section: dict[str, Any] = {
        "config": cfg.model_dump(),
        "source_autoencoder_sha256": read_meta(checkpoint)["files"]["autoencoder.safetensors"],
        "first_loss": round(float(np.mean(losses[:50])), 6),
        "last_loss": round(float(np.mean(losses[-50:])), 6),
        "step": step,
        "wall_s": round(time.perf_counter() - start, 1),
        "threads": torch.get_num_threads(),
    }
    if eval_prompts:
        section["eval"] = {"suite": "core", "prompts": eval_prompts, "seeds": [0],
                           "strict_before": before, "strict_after": accuracy()}
    assert pipe.autoencoder is not None
    weights = dict(ckpt.weights)
    weights["autoencoder"] = {k: v.clone() for k, v in pipe.autoencoder.state_dict().items()}
    meta = {k: v for k, v in ckpt.meta.items() if k != "bundle"}
    if "decoder_refine" in meta:  # refining a refined decoder: keep the record of each pass
        section["previous"] = meta["decoder_refine"]
    meta["decoder_refine"] = section
    write_checkpoint(out, Checkpoint(meta, weights, state))
    return section
