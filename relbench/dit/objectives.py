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

    def __init__(self, objective: str) -> None:
        if objective not in OBJECTIVES:
            from relbench.scene import did_you_mean

            raise ValueError(f"unknown objective {objective!r}{did_you_mean(objective, OBJECTIVES)}")
        self.objective = objective
        self._ddpm = None if objective == "flow" else _ddpm(objective)

    def corrupt(
        self, x0: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_t, model timestep (B,), target), all drawn from `generator`."""
        b = x0.shape[0]
        noise = torch.randn(x0.shape, generator=generator)  # (B, C, S, S)
        if self.objective == "flow":
            s = torch.rand(b, generator=generator)  # (B,)
            sv = s.view(b, 1, 1, 1)
            return (1 - sv) * x0 + sv * noise, s * NUM_TRAIN_TIMESTEPS, noise - x0
        t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (b,), generator=generator)  # (B,)
        x_t = self._ddpm.add_noise(x0, noise, t)
        target = noise if self.objective == "eps" else self._ddpm.get_velocity(x0, noise, t)
        return x_t, t.float(), target


def sampling_scheduler(objective: str) -> Any:
    """The inference scheduler that fits the objective: DPM-Solver++ (ε, v) or Euler (flow)."""
    if objective == "flow":
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=1.0)
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler(
        **_diffusion_schedule(objective),
        algorithm_type="dpmsolver++",
        solver_order=2,
    )
