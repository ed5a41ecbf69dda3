"""A tiny convolutional autoencoder trained here on renderer images (flat shapes compress well),
standing in for the paper's SD-VAE: a 32 px image → latent_channels × 8 × 8 (stride 4)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn
from torch.nn import functional as F


class AutoencoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: int = 4
    """Latent channels."""
    downsample: int = 4
    """Spatial stride (a power of two)."""
    width: int = 64
    scale: float = 1.0
    """Multiplier that gives the latents the pixels' standard deviation, objectives.SIGMA_DATA
    = 0.5 (set after training), so the `x0` preconditioning fits both spaces. Checkpoints written
    before this was changed scaled to 1; their stored scale is used as it is."""


class TinyAutoencoder(nn.Module):
    """images in [-1, 1] (B, 3, H, W) ⇄ latents (B, C, H/d, W/d), scaled to std SIGMA_DATA."""

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        n = int(math.log2(config.downsample))
        if 2**n != config.downsample:
            raise ValueError(f"downsample must be a power of two, got {config.downsample}")
        self.config = config
        w = config.width
        enc: list[nn.Module] = [nn.Conv2d(3, w, 3, padding=1), nn.SiLU()]
        for _ in range(n):
            enc += [nn.Conv2d(w, w, 4, stride=2, padding=1), nn.SiLU(), nn.Conv2d(w, w, 3, padding=1), nn.SiLU()]
        enc.append(nn.Conv2d(w, config.channels, 1))
        dec: list[nn.Module] = [nn.Conv2d(config.channels, w, 3, padding=1), nn.SiLU()]
        for _ in range(n):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w, w, 3, padding=1), nn.SiLU()]
        dec.append(nn.Conv2d(w, 3, 3, padding=1))
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images) * self.config.scale  # (B, C, H/d, W/d)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents / self.config.scale)  # (B, 3, H, W)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(images))


def train_autoencoder(
    config: AutoencoderConfig,
    images: Callable[[int], np.ndarray],
    *,
    steps: int = 1500,
    lr: float = 2e-3,
    seed: int = 0,
) -> tuple[TinyAutoencoder, list[float]]:
    """Fit the autoencoder by MSE on `images(step)` ((B, H, W, 3) uint8 batches), then set
    `config.scale` so encoded latents have standard deviation SIGMA_DATA, the value the `x0`
    preconditioning assumes (a first latent run scaled to 1 started at 3.8× the loss of
    predicting zero). Returns (model, losses)."""
    from relbench.dit.objectives import SIGMA_DATA

    torch.manual_seed(seed)
    ae = TinyAutoencoder(config.model_copy(update={"scale": 1.0}))
    opt = torch.optim.Adam(ae.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    for step in range(steps):
        x = to_tensor(images(step))
        loss = F.mse_loss(ae(x), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        std = float(ae.encode(to_tensor(images(steps))).std())
    ae.config = ae.config.model_copy(update={"scale": SIGMA_DATA / max(std, 1e-6)})
    return ae.eval().requires_grad_(False), losses


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 → (B, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [-1, 1] → (B, H, W, 3) uint8."""
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().numpy()
