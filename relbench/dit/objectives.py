"""Training objectives and their matching samplers, built on diffusers' schedulers.

- `eps`  DDPM ε-prediction (the paper's IDDPM setup, linear betas, 1000 steps); DPM-Solver++.
- `v`    the same noising with v-prediction; DPM-Solver++.
- `flow` rectified flow: x_s = (1 − s)·x0 + s·noise, the model predicts noise − x0; Euler.
- `x0`   the same path with EDM preconditioning (Karras et al. 2022): the network F gives
         x0 = c_skip(s)·x_s + c_out(s)·F, its target has unit variance at every noise level, and
         at high noise F is the image itself rather than a copy of the noise. That is where the
         layout (and so the text) matters; with `flow` the text's share of the target is small
         there and a small DiT learns to read the caption far later. Sampled with the same Euler
         scheduler, on the velocity (x_s − x0)/s.
The network always receives a timestep in [0, 1000) (flow: s·1000), as PixArt's embedding expects.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

Objective = Literal["eps", "v", "flow", "x0"]
OBJECTIVES: tuple[str, ...] = ("eps", "v", "flow", "x0")
FLOW_PATH: tuple[str, ...] = ("flow", "x0")
"""Objectives on the rectified-flow path (sampled by flow-matching Euler)."""
SIGMA_DATA = 0.5
"""EDM's data standard deviation in the `x0` preconditioning."""
NUM_TRAIN_TIMESTEPS = 1000
BETA_START, BETA_END = 1e-4, 0.02


def _diffusion_schedule(objective: str) -> dict[str, Any]:
    """The noise schedule shared by training (DDPM) and sampling (DPM-Solver++)."""
    return {
        "num_train_timesteps": NUM_TRAIN_TIMESTEPS,
        "beta_start": BETA_START,
        "beta_end": BETA_END,
        "beta_schedule": "linear",
        "prediction_type": "epsilon" if objective == "eps" else "v_prediction",
    }


def _ddpm(objective: str) -> Any:
    from diffusers import DDPMScheduler

    return DDPMScheduler(**_diffusion_schedule(objective))


class NoiseProcess:
    """Noising x0 at random times and the regression target for one objective."""

    def __init__(self, objective: str, time_mean: float = 0.0, time_std: float = 0.0) -> None:
        if objective not in OBJECTIVES:
            from relbench.scene import did_you_mean

            raise ValueError(f"unknown objective {objective!r}{did_you_mean(objective, OBJECTIVES)}")
        if time_std < 0:
            raise ValueError(f"time_std must be >= 0, got {time_std}")
        self.objective, self.time_mean, self.time_std = objective, time_mean, time_std
        self._ddpm = None if objective in FLOW_PATH else _ddpm(objective)

    def corrupt(
        self, x0: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_t, model timestep (B,), target), all drawn from `generator`."""
        b = x0.shape[0]
        noise = torch.randn(x0.shape, generator=generator)  # (B, C, S, S)
        u = self.sample_times(b, generator)  # (B,) in (0, 1)
        if self.objective in FLOW_PATH:
            sv = u.view(b, 1, 1, 1)
            x_t = (1 - sv) * x0 + sv * noise
            if self.objective == "flow":
                return x_t, u * NUM_TRAIN_TIMESTEPS, noise - x0
            c_skip, c_out = edm_coefficients(sv)
            return x_t, u * NUM_TRAIN_TIMESTEPS, (x0 - c_skip * x_t) / c_out
        t = (u * NUM_TRAIN_TIMESTEPS).long().clamp_(0, NUM_TRAIN_TIMESTEPS - 1)  # (B,)
        x_t = self._ddpm.add_noise(x0, noise, t)
        target = noise if self.objective == "eps" else self._ddpm.get_velocity(x0, noise, t)
        return x_t, t.float(), target


    def sample_times(self, b: int, generator: torch.Generator) -> torch.Tensor:
        """Noise levels in (0, 1): uniform when time_std is 0, else logit-normal
        sigmoid(N(time_mean, time_std)) as in SD3 (time_mean > 0 favours high noise, where the
        layout, and so the relation, is decided)."""
        if self.time_std == 0:
            return torch.rand(b, generator=generator)
        z = torch.randn(b, generator=generator) * self.time_std + self.time_mean
        return torch.sigmoid(z)


def edm_coefficients(s: torch.Tensor, sigma_data: float = SIGMA_DATA) -> tuple[torch.Tensor, torch.Tensor]:
    """(c_skip, c_out) of x_s = (1 − s)·x0 + s·noise: the x0 estimate c_skip·x_s + c_out·F whose
    F-target (x0 − c_skip·x_s) / c_out has unit variance when x0 has std `sigma_data`."""
    a, d2 = 1 - s, sigma_data**2
    denom = a * a * d2 + s * s
    return a * d2 / denom, sigma_data * s / denom.sqrt()


def predicted_x0(
    objective: str, pred: torch.Tensor, x_t: torch.Tensor, s: float | torch.Tensor
) -> torch.Tensor:
    """The clean-sample estimate from a flow-path model's output at noise level s (a float, or a
    tensor that broadcasts against x_t, e.g. (B, 1, 1, 1))."""
    if objective not in FLOW_PATH:
        raise ValueError(f"{objective!r} is not a flow-path objective")
    s = torch.as_tensor(s, dtype=x_t.dtype)
    if objective == "flow":  # the output is the velocity noise − x0
        return x_t - s * pred
    c_skip, c_out = edm_coefficients(s)
    return c_skip * x_t + c_out * pred


def to_velocity(objective: str, pred: torch.Tensor, x_t: torch.Tensor, s: float) -> torch.Tensor:
    """The flow velocity (noise − x0) from a flow-path model's output at noise level s ∈ (0, 1]."""
    if objective == "flow":
        return pred
    return (x_t - predicted_x0(objective, pred, x_t, s)) / max(float(s), 1e-6)


def sampling_scheduler(objective: str, shift: float = 1.0) -> Any:
    """The inference scheduler that fits the objective: DPM-Solver++ (ε, v) or Euler (flow, x0).

    `shift` > 1 (flow only) spends more of the steps at high noise, where the layout is decided."""
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    if objective in FLOW_PATH:
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=shift)
    if shift != 1.0:
        raise ValueError(f"shift applies to the flow-path objectives only, not {objective!r}")
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(
        **_diffusion_schedule(objective),
        algorithm_type="dpmsolver++",
        solver_order=2,
    )
