"""relbench's own DiTs: the bundled models (`rtep-micro`, ...) and `dit:<checkpoint-dir>`.

Every directory under `relbench/bundled/` that holds a checkpoint `config.json` is a model named
after the directory. `dit:DIR` loads a training checkpoint (`OUT/checkpoints/step_N`), a training
output directory (its newest checkpoint) or an exported bundle. Nothing here imports torch until
a model is built, so listing models stays cheap.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from relbench.models.api import GenerationRequest, NoImage
from relbench.models.registry import register_model

_F = TypeVar("_F", bound=Callable[..., Any])

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

    geometry: str = "relbench"
    """The data geometry the checkpoint was trained on (relbench.scene.GEOMETRIES): `relbench eval`
    scores with the detector of its position convention unless told otherwise."""

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
        compile: bool = False,
    ) -> None:
        from relbench.dit.sample import DEFAULT_GUIDANCE, DEFAULT_STEPS

        self.name, self.pipe, self.path = name, pipeline, path
        self.steps = DEFAULT_STEPS if steps is None else steps
        self.guidance = DEFAULT_GUIDANCE if guidance is None else guidance
        self.batch_size, self.output_size = batch_size, output_size
        import math

        for what, v in (("shift", shift), ("guidance", guidance)):
            if v is not None and not math.isfinite(float(v)):
                raise ValueError(f"{what} must be a finite number, got {v}")
        if shift is not None:  # else the checkpoint's own (recorded at export), default 1
            from relbench.dit.objectives import sampling_scheduler

            sampling_scheduler(pipeline.objective, shift)  # refuses shift <= 0 or a non-flow model
            pipeline.shift = float(shift)
        pipeline.bf16 = bool(bf16)
        pipeline.compile = bool(compile)
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
            "compile": self.pipe.compile,
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
                     "shift": self.pipe.shift, "bf16": self.pipe.bf16,
                     "compile": self.pipe.compile},
            "checkpoint_hash": self.pipe.checkpoint_hash,
            "weights_hash": getattr(self.pipe, "weights_hash", None),
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


def _takes_sampling_options(factory: _F) -> _F:
    """Declare that `factory(..., **options)` takes exactly the sampling options of `DiTModel`.

    The options (steps, guidance, batch_size, output_size, shift, bf16, compile) and their defaults are
    spelled out once, in `DiTModel.__init__`; `load_dit` and the registry factories forward them.
    Giving the forwarders that signature keeps `help()` readable and the registry's argument
    check exact (`load_model("rtep-micro", step=2)` is refused with the list of options), and a
    direct call with an unknown option fails before any weights are read."""
    own = inspect.signature(factory)
    options = [
        p for p in inspect.signature(DiTModel.__init__).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name != "path"  # path is where the weights were found
    ]
    params = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
    sig = own.replace(parameters=params + options)

    @functools.wraps(factory)
    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            sig.bind(*args, **kwargs)
        except TypeError as e:  # as Python's own: "load_dit() got an unexpected keyword ..."
            raise TypeError(f"{factory.__name__}() {e}") from None
        return factory(*args, **kwargs)

    checked.__signature__ = sig  # type: ignore[attr-defined]
    return checked  # type: ignore[return-value]


@_takes_sampling_options
def load_dit(name: str, path: str | Path, **options: Any) -> DiTModel:
    """Load the checkpoint at `path` (EMA weights; checksums verified) as the model `name`, with
    the sampling `options` of `DiTModel`. Batch size does not change the images (each image's
    noise comes from its own seed)."""
    try:
        from relbench.dit.sample import load_pipeline
    except ImportError as e:
        raise ImportError(f"model {name!r} needs the dit extra: pip install 'relbench[dit]'") from e
    from relbench.dit.checkpoint import checkpoint_geometry, read_meta

    ckpt = resolve_checkpoint(path)
    model = DiTModel(name, load_pipeline(ckpt), path=str(ckpt), **options)
    model.geometry = checkpoint_geometry(read_meta(ckpt), name)
    return model


@_takes_sampling_options
def _bundled(name: str, **options: Any) -> DiTModel:
    model = load_dit(name, BUNDLED_ROOT / name, **options)
    model.path = f"bundled/{name}"  # not the install location, which differs between machines
    return model


@register_model("dit", prefix=True)
@_takes_sampling_options
def _dit(path: str, **options: Any) -> DiTModel:
    return load_dit(f"dit:{path}", path, **options)
