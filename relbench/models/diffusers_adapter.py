"""`diffusers:<path-or-id>`: any diffusers text-to-image pipeline (PixArt, SD, ...).

Options (`relbench eval --device/--dtype/--height/--width/--model-arg`): `device` ("cpu",
"cuda", "cuda:1", ...), `dtype` (float32 / bfloat16 / float16; `bf16=True` is bfloat16), `height`
and `width` (default: the pipeline's own size, e.g. 1024 for Sana), `steps`, `guidance`. bfloat16 on
a CPU without native bf16 runs float32 instead with a warning (`relbench.hardware.fit_dtype`)
unless `force_bf16=True`; the dtype that ran is recorded, with the one requested.

The pipeline is called once per batch with one `torch.Generator(device).manual_seed(seed)` per
prompt, so an image depends on (weights, prompt, seed, sampling options) and not on its batch
neighbours. Images come back as uint8 RGB; an output with NaN values or of the wrong shape
becomes an unscorable row (`NoImage`) instead of a silently clipped picture.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from relbench.models.api import GenerationRequest, NoImage
from relbench.models.registry import register_model

DTYPES = ("float32", "float16", "bfloat16")
DENOISERS = ("transformer", "unet")
"""Pipeline components whose weights identify the model (hashed into `checkpoint_hash`)."""


class DiffusersModel:
    """A loaded `DiffusionPipeline` and the sampling options it is called with."""

    def __init__(
        self,
        path: str,
        pipeline: Any,
        *,
        steps: int,
        guidance: float,
        device: str = "cpu",
        dtype: str = "float32",
        height: int | None = None,
        width: int | None = None,
        dtype_requested: str | None = None,
    ) -> None:
        self.name = f"diffusers:{path}"
        self.dtype_requested = dtype_requested or dtype
        self.path, self.pipe = path, pipeline
        self.steps, self.guidance, self.device, self.dtype = steps, guidance, device, dtype
        self.height, self.width = height, width
        self._hash: str | None = None
        self._call_params = set(inspect.signature(pipeline.__call__).parameters)
        if hasattr(pipeline, "set_progress_bar_config"):
            pipeline.set_progress_bar_config(disable=True)  # library code never prints

    @property
    def sampling(self) -> dict[str, Any]:
        """Recorded in the run log by the runner."""
        return {
            "steps": self.steps,
            "guidance": self.guidance,
            "scheduler": type(getattr(self.pipe, "scheduler", None)).__name__,
            "height": self.height,
            "width": self.width,
            "dtype": self.dtype,
        }

    def generate(self, requests: Sequence[GenerationRequest]) -> list[np.ndarray | NoImage]:
        import torch

        kwargs: dict[str, Any] = {
            "prompt": [r.prompt for r in requests],
            "generator": [torch.Generator(self.device).manual_seed(int(r.seed)) for r in requests],
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance,
            "output_type": "np",
        }
        if self.height is not None:
            kwargs["height"] = self.height
        if self.width is not None:
            kwargs["width"] = self.width
        # PixArt-style options: relbench asks for square images at the model's own size, so
        # aspect-ratio binning has nothing to do; caption cleaning would rewrite the prompt
        # text (case, punctuation) that perturbations vary on purpose.
        for key in ("use_resolution_binning", "clean_caption"):
            if key in self._call_params:
                kwargs[key] = False
        images = np.asarray(self.pipe(**kwargs).images)  # (B, H, W, C) floats in [0, 1]
        return [self._to_uint8(img, req) for img, req in zip(images, requests)]

    def _to_uint8(self, img: np.ndarray, req: GenerationRequest) -> np.ndarray | NoImage:
        what = f"diffusers pipeline output for prompt {req.prompt!r} seed {req.seed}"
        if img.ndim != 3 or img.shape[2] != 3:
            return NoImage(f"{what} has shape {img.shape}, expected (H, W, 3)")
        want = (self.height or img.shape[0], self.width or img.shape[1])
        if img.shape[:2] != want:
            return NoImage(f"{what} is {img.shape[0]}×{img.shape[1]}, requested {want[0]}×{want[1]}")
        if not np.isfinite(img).all():
            return NoImage(f"{what} has NaN or infinite values")
        if img.dtype == np.uint8:
            return img
        return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

    def describe(self) -> dict[str, Any]:
        import diffusers

        args = {
            "steps": self.steps, "guidance": self.guidance, "device": self.device,
            "dtype": self.dtype, "height": self.height, "width": self.width,
        }
        if self.dtype_requested != self.dtype:
            args["dtype_requested"] = self.dtype_requested
        return {
            "name": self.name,
            "args": args,
            "checkpoint_hash": self.weights_hash(),
            "pipeline": type(self.pipe).__name__,
            "diffusers_version": diffusers.__version__,
        }

    def weights_hash(self) -> str | None:
        """sha256 of the denoiser's safetensors file(s) (transformer or unet), or None when the
        pipeline is not on local disk (an id not in the Hugging Face cache) or has none."""
        if self._hash is None:
            root = _local_dir(self.path)
            for part in DENOISERS if root is not None else ():
                files = sorted((root / part).glob("*.safetensors"))
                if files:
                    self._hash = _files_hash(files)
                    break
        return self._hash


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(".")[:2] if x.isdigit())


def _local_dir(path: str) -> Path | None:
    if Path(path).is_dir():
        return Path(path)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(path, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, not a repo id, hub library missing: no hash
        return None


def _files_hash(files: list[Path]) -> str:
    from relbench.runlog import file_hash

    if len(files) == 1:
        return file_hash(files[0])
    h = hashlib.sha256()
    for f in files:  # sharded weights: hash of the per-shard hashes, in name order
        h.update(f"{f.name}\0{file_hash(f)}\n".encode())
    return h.hexdigest()


@register_model("diffusers", prefix=True)
def load_diffusers(
    path: str,
    *,
    steps: int | None = None,
    guidance: float | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    height: int | None = None,
    width: int | None = None,
    bf16: bool | None = None,
    force_bf16: bool = False,
) -> DiffusersModel:
    """`DiffusionPipeline.from_pretrained(path)` (offline when `path` is a directory) moved to
    `device` in `dtype`; steps and guidance default to the paper's sampler (14 steps, CFG 4.5).
    `bf16=True` means dtype bfloat16; see the module doc for bfloat16 on CPUs."""
    try:
        import diffusers
        import torch
        from diffusers import DiffusionPipeline
    except ImportError as e:
        raise ImportError("diffusers:<path> models need the dit extra: pip install 'relbench[dit]'") from e
    from relbench.dit.sample import DEFAULT_GUIDANCE, DEFAULT_STEPS

    from relbench.hardware import fit_dtype

    if bf16:
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"bf16 and dtype {dtype!r} contradict each other; give one of them")
        dtype = "bfloat16"
    if dtype not in DTYPES:
        from relbench.scene import did_you_mean

        raise ValueError(f"unknown dtype {dtype!r}{did_you_mean(dtype, DTYPES)}")
    for side, value in (("height", height), ("width", width)):
        whole = isinstance(value, int) and not isinstance(value, bool)
        if value is not None and (not whole or value < 8):
            raise ValueError(f"{side} must be a whole number of pixels >= 8, got {value!r}")
    requested, dtype = dtype, fit_dtype(dtype, device, force=force_bf16)
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: torch sees no CUDA GPU here (use --device cpu)")
    local = Path(path).is_dir()
    # diffusers 0.42 renamed `torch_dtype` to `dtype` (the old name warns).
    dtype_key = "dtype" if _version(diffusers.__version__) >= (0, 42) else "torch_dtype"
    try:
        pipe = DiffusionPipeline.from_pretrained(
            path, local_files_only=local, **{dtype_key: getattr(torch, dtype)}
        )
    except (OSError, ValueError) as e:
        where = "directory" if local else "model id (not a local directory)"
        raise ValueError(f"cannot load a diffusers pipeline from {where} {path!r}: {e}") from e
    try:
        pipe = pipe.to(device)
    except (RuntimeError, AssertionError, ValueError) as e:  # no CUDA build, no such GPU, bad name
        raise ValueError(f"cannot move the pipeline to device {device!r}: {e}") from e
    return DiffusersModel(
        path, pipe,
        steps=DEFAULT_STEPS if steps is None else steps,
        guidance=DEFAULT_GUIDANCE if guidance is None else guidance,
        device=device, dtype=dtype, height=height, width=width, dtype_requested=requested,
    )
