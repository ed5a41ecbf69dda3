"""relbench's own DiTs: the bundled models (`rtep-micro`, ...) and `dit:<checkpoint-dir>`.

Every directory under `relbench/bundled/` that holds a checkpoint `config.json` is a model named
after the directory. `dit:DIR` loads a training checkpoint (`OUT/checkpoints/step_N`), a training
output directory (its newest checkpoint) or an exported bundle. Nothing here imports torch until
a model is built, so listing models stays cheap.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from relbench.models.api import GenerationRequest, NoImage
from relbench.models.registry import register_model

BUNDLED_ROOT = Path(__file__).resolve().parents[1] / "bundled"
"""Where bundled models live (package data of relbench)."""


def list_bundled(root: Path | None = None) -> list[str]:
    """Names of the bundled model directories present (each holds a checkpoint config.json)."""
    root = BUNDLED_ROOT if root is None else Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())


def bundled_factories() -> dict[str, Callable[..., DiTModel]]:
    """One registry factory per bundled directory present now."""
    return {name: functools.partial(_bundled, name) for name in list_bundled()}


class DiTModel:
    """A `DiTPipeline` behind the model protocol, with the sampling options it runs."""

    def __init__(
        self,
        name: str,
        pipeline: Any,
        *,
        path: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        batch_size: int = 32,
        output_size: int = 128,
        shift: float | None = None,
        bf16: bool = False,
    ) -> None:
        from relbench.dit.sample import DEFAULT_GUIDANCE, DEFAULT_STEPS

        self.name, self.pipe, self.path = name, pipeline, path
        self.steps = DEFAULT_STEPS if steps is None else steps
        self.guidance = DEFAULT_GUIDANCE if guidance is None else guidance
        self.batch_size, self.output_size = batch_size, output_size
        if shift is not None:  # else the checkpoint's own (recorded at export), default 1
            if pipeline.objective != "flow":
                raise ValueError(f"shift applies to flow models only; {name!r} is {pipeline.objective!r}")
            if shift <= 0:
                raise ValueError(f"shift must be positive, got {shift}")
            pipeline.shift = float(shift)
        pipeline.bf16 = bool(bf16)
        if self.steps < 1 or batch_size < 1 or output_size < 1:
            raise ValueError(
                f"steps, batch_size and output_size must be positive, got {self.steps}, "
                f"{batch_size}, {output_size}"
            )

    @property
    def sampling(self) -> dict[str, Any]:
        """Recorded in the run log by the runner."""
        from relbench.dit.objectives import sampling_scheduler

        return {
            "steps": self.steps,
            "guidance": self.guidance,
            "scheduler": type(sampling_scheduler(self.pipe.objective, self.pipe.shift)).__name__,
            "shift": self.pipe.shift,
            "bf16": self.pipe.bf16,
            "output_size": self.output_size,
        }

    def generate(self, requests: Sequence[GenerationRequest]) -> list[np.ndarray | NoImage]:
        return list(self.pipe.generate(
            [r.prompt for r in requests], [r.seed for r in requests], steps=self.steps,
            guidance=self.guidance, batch_size=self.batch_size, output_size=self.output_size,
        ))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "args": {"steps": self.steps, "guidance": self.guidance, "output_size": self.output_size,
                     "shift": self.pipe.shift, "bf16": self.pipe.bf16},
            "checkpoint_hash": self.pipe.checkpoint_hash,
            "path": self.path,
            "dit": self.pipe.describe(),
        }


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory: `path` itself, or the newest checkpoint of a training output."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    from relbench.dit.train import latest_checkpoint

    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(
            f"{path}: not a DiT checkpoint (no config.json) nor a training output with checkpoints/"
        )
    return latest


def load_dit(
    name: str,
    path: str | Path,
    *,
    steps: int | None = None,
    guidance: float | None = None,
    batch_size: int = 32,
    output_size: int = 128,
    shift: float | None = None,
    bf16: bool = False,
) -> DiTModel:
    """Load the checkpoint at `path` (EMA weights; checksums verified) as the model `name`.
    Batch size does not change the images (each image's noise comes from its own seed)."""
    try:
        from relbench.dit.sample import load_pipeline
    except ImportError as e:
        raise ImportError(f"model {name!r} needs the dit extra: pip install 'relbench[dit]'") from e
    ckpt = resolve_checkpoint(path)
    return DiTModel(
        name, load_pipeline(ckpt), path=str(ckpt), steps=steps, guidance=guidance,
        batch_size=batch_size, output_size=output_size, shift=shift, bf16=bf16,
    )


def _bundled(
    name: str,
    steps: int | None = None,
    guidance: float | None = None,
    batch_size: int = 32,
    output_size: int = 128,
    shift: float | None = None,
    bf16: bool = False,
) -> DiTModel:
    model = load_dit(name, BUNDLED_ROOT / name, steps=steps, guidance=guidance,
                     batch_size=batch_size, output_size=output_size, shift=shift, bf16=bf16)
    model.path = f"bundled/{name}"  # not the install location, which differs between machines
    return model


@register_model("dit", prefix=True)
def _dit(
    path: str,
    steps: int | None = None,
    guidance: float | None = None,
    batch_size: int = 32,
    output_size: int = 128,
    shift: float | None = None,
    bf16: bool = False,
) -> DiTModel:
    return load_dit(f"dit:{path}", path, steps=steps, guidance=guidance,
                    batch_size=batch_size, output_size=output_size, shift=shift, bf16=bf16)
