"""Training objectives and their matching samplers, built on diffusers' schedulers.

- `eps`  DDPM ε-prediction (the paper's IDDPM setup, linear betas, 1000 steps); DPM-Solver++.
- `v`    the same noising with v-prediction; DPM-Solver++.
- `flow` rectified flow: x_s = (1 − s)·x0 + s·noise, the model predicts noise − x0; Euler.
The network always receives a timestep in [0, 1000) (flow: s·1000), as PixArt's embedding expects.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

Objective = Literal["eps", "v", "flow"]
OBJECTIVES: tuple[str, ...] = ("eps", "v", "flow")
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
        self._ddpm = None if objective == "flow" else _ddpm(objective)

    def corrupt(
        self, x0: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_t, model timestep (B,), target), all drawn from `generator`."""
        b = x0.shape[0]
        noise = torch.randn(x0.shape, generator=generator)  # (B, C, S, S)
        u = self.sample_times(b, generator)  # (B,) in (0, 1)
        if self.objective == "flow":
            s = u
            sv = s.view(b, 1, 1, 1)
            return (1 - sv) * x0 + sv * noise, s * NUM_TRAIN_TIMESTEPS, noise - x0
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


def sampling_scheduler(objective: str, shift: float = 1.0) -> Any:
    """The inference scheduler that fits the objective: DPM-Solver++ (ε, v) or Euler (flow).

    `shift` > 1 (flow only) spends more of the steps at high noise, where the layout is decided."""
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    if objective == "flow":
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=shift)
    if shift != 1.0:
        raise ValueError(f"shift applies to the flow objective only, not {objective!r}")
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(
        **_diffusion_schedule(objective),
        algorithm_type="dpmsolver++",
        solver_order=2,
    )
