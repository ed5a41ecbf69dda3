"""Checkpoints as a directory of safetensors files plus JSON (no pickle anywhere).

    config.json          format, version, model/encoder/objective/autoencoder config, and the
                         SHA-256 of every tensor file (written last: it marks the checkpoint complete)
    model.safetensors    network weights       ema.safetensors        EMA weights (optional)
    autoencoder.safetensors (latent models)    optimizer.safetensors  AdamW moments (optional)
    state.json           step, wall time, optimizer hyper-parameters, scheduler state

Every read verifies the checksums and that tensor names and shapes match the config, so a
truncated, corrupt or mismatched file fails with an error naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterable

import torch
from pydantic import (
    BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator,
)
from torch import nn

from relbench.runlog import file_hash

FORMAT = "relbench-dit-checkpoint"
FORMAT_VERSION = 1
"""Schema number of a checkpoint's config.json (`version`; relbench.versions: an integer)."""
CONFIG_FILE = "config.json"
STATE_FILE = "state.json"


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not match its config."""


@dataclass
class Checkpoint:
    meta: dict[str, Any]
    """config.json without the bookkeeping (format, version, files)."""
    weights: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    """part name ("model", "ema", "autoencoder", "optimizer") → tensors."""
    state: dict[str, Any] | None = None


def write_checkpoint(path: Path, ckpt: Checkpoint) -> None:
    """Write `ckpt` to the directory `path` atomically (a temporary directory renamed into place)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    files = {}
    for part, tensors in ckpt.weights.items():
        name = f"{part}.safetensors"
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp / name))
        files[name] = file_hash(tmp / name)
    if ckpt.state is not None:
        (tmp / STATE_FILE).write_text(json.dumps(ckpt.state, indent=1))
        files[STATE_FILE] = file_hash(tmp / STATE_FILE)
    config = {"format": FORMAT, "version": FORMAT_VERSION, **ckpt.meta, "files": files}
    with open(tmp / CONFIG_FILE, "w") as f:
        json.dump(config, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    replace_dir(tmp, path)


def replace_dir(stage: Path, dest: Path) -> None:
    """Move the complete directory `stage` to `dest`, replacing any directory there: the old one
    is renamed aside first and deleted last, so `dest` is only ever the old or the new whole."""
    stage, dest = Path(stage), Path(dest)
    if dest.exists():
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        os.replace(dest, old)
        os.replace(stage, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(stage, dest)


MAX_CONFIG_BYTES = 1 << 20
"""A config.json larger than this (1 MiB) is refused unread."""


class _ModelBounds(BaseModel):
    """Upper bounds on the sizes in a checkpoint's `model` section, checked before anything is
    allocated (ModelConfig itself checks the combinations when the model is built)."""

    model_config = ConfigDict(extra="allow")

    preset: str = Field(default="micro", max_length=16)
    head_dim: int = Field(default=64, ge=1, le=256)
    encoder: str = Field(default="rtep", max_length=4096)
    encoder_dim: int = Field(default=384, ge=2, le=8192)
    encoder_seed: int = Field(default=0, ge=0, lt=2**63)
    max_length: int = Field(default=20, ge=1, le=1024)
    image_size: int = Field(default=32, ge=1, le=2048)
    patch_size: int = Field(default=4, ge=1, le=256)
    latent_channels: int = Field(default=4, ge=1, le=256)
    latent_downsample: int = Field(default=4, ge=1, le=256)

    @field_validator("encoder")
    @classmethod
    def _local_encoder(cls, v: str) -> str:
        """A checkpoint never makes relbench reach a network: `t5:` must name a local folder."""
        if v.startswith("t5:") and not Path(v[3:]).expanduser().is_dir():
            raise ValueError(f"encoder {v!r}: a checkpoint's t5 encoder must be a local directory "
                             "(relbench never downloads what a checkpoint names)")
        return v


class _AutoencoderBounds(BaseModel):
    model_config = ConfigDict(extra="allow")

    channels: int = Field(default=4, ge=1, le=256)
    downsample: int = Field(default=4, ge=1, le=256)
    width: int = Field(default=64, ge=1, le=4096)
    scale: float = Field(default=1.0, gt=0, allow_inf_nan=False)


class _SamplingBounds(BaseModel):
    model_config = ConfigDict(extra="allow")

    shift: float = Field(default=1.0, gt=0, le=1000, allow_inf_nan=False)


_FILE_NAME = r"^(model|ema|autoencoder|optimizer)\.safetensors$|^state\.json$"
_SHA256 = r"^[0-9a-f]{64}$"


class CheckpointConfig(BaseModel):
    """What config.json must hold before relbench reads a tensor or builds a module: known file
    names inside the directory with sha256 digests, and bounded sizes (`_ModelBounds`)."""

    model_config = ConfigDict(extra="allow")

    format: str
    version: int
    model: _ModelBounds | None = None
    autoencoder: _AutoencoderBounds | None = None
    sampling: _SamplingBounds | None = None
    objective: str | None = Field(default=None, max_length=64)
    files: dict[Annotated[str, StringConstraints(pattern=_FILE_NAME)],
                Annotated[str, StringConstraints(pattern=_SHA256)]] = Field(default_factory=dict)


def checkpoint_hash(config: dict[str, Any], weights: str = "ema") -> str:
    """The identity a run log records for a checkpoint: a sha256 over the weights that make its
    images (`sampling_hash`) and its whole config.json (canonical JSON), so neither can change
    without the hash changing. Computed, never stored: old checkpoints need no rewrite."""
    from relbench.runlog import json_hash

    return json_hash({"weights": sampling_hash(config["files"], weights), "config": config})


_UNRECORDED_GEOMETRY_WARNED: set[str] = set()


def checkpoint_geometry(meta: dict[str, Any], source: str) -> str:
    """The data geometry (relbench.scene.GEOMETRIES) a checkpoint was trained on, from its
    config.json (`geometry`, else `train.geometry`). A checkpoint that records none predates the
    field and was trained on relbench renders: it is treated as `relbench`, with one warning per
    `source` (its path or name) per process."""
    import warnings

    from relbench.scene import check_geometry

    geometry = meta.get("geometry") or (meta.get("train") or {}).get("geometry")
    if geometry is None:
        if source not in _UNRECORDED_GEOMETRY_WARNED:
            _UNRECORDED_GEOMETRY_WARNED.add(source)
            warnings.warn(f"{source}: checkpoint records no training geometry; treated as "
                          "'relbench' (triangles centred on their centroid)", stacklevel=2)
        return "relbench"
    try:
        return check_geometry(geometry)
    except ValueError as e:
        raise CheckpointError(f"{source}: {e}") from None


def read_meta(path: Path) -> dict[str, Any]:
    """config.json of a checkpoint directory, validated for format and version, then by
    `CheckpointConfig` (file names, digests, size bounds, a local text encoder)."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise CheckpointError(f"{file}: not found (is {path} a relbench DiT checkpoint?)")
    if file.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(
            f"{file}: larger than {MAX_CONFIG_BYTES} bytes; not a checkpoint config")
    try:
        config = json.loads(file.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{file}: corrupt JSON ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{file}: holds {type(config).__name__}, not a JSON object")
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{file}: format {config.get('format')!r}, expected {FORMAT!r}")
    if config.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{file}: format version {config.get('version')!r}, this relbench reads {FORMAT_VERSION}"
        )
    try:
        CheckpointConfig.model_validate(config)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise CheckpointError(f"{file}: invalid {where}: {first['msg']}") from None
    return config


def sampling_hash(files: dict[str, str], weights: str = "ema") -> str:
    """The hash that identifies a checkpoint's images: the sha256 of `weights`.safetensors, or, for
    a latent model, a sha256 over it and autoencoder.safetensors (refining the decoder changes the
    images without touching the transformer). `files` is config.json's file → sha256 table."""
    import hashlib

    digest = files[f"{weights}.safetensors"]
    decoder = files.get("autoencoder.safetensors")
    if decoder is None:
        return digest
    return hashlib.sha256(f"{digest}+{decoder}".encode()).hexdigest()


def read_checkpoint(path: Path, parts: Iterable[str] | None = None) -> Checkpoint:
    """Read and verify a checkpoint; `parts` limits which tensor files are loaded (default all)."""
    from safetensors.torch import load_file

    path = Path(path)
    config = read_meta(path)
    files: dict[str, str] = config.pop("files", {})
    for key in ("format", "version"):
        config.pop(key)
    wanted = None if parts is None else set(parts)
    ckpt = Checkpoint(meta=config)
    for name, digest in files.items():
        part = name.removesuffix(".safetensors")
        if name != STATE_FILE and wanted is not None and part not in wanted:
            continue
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file}: missing (listed in {path / CONFIG_FILE})")
        actual = file_hash(file)
        if actual != digest:
            raise CheckpointError(
                f"{file}: checksum mismatch (file is truncated or corrupt: sha256 {actual[:12]}…, "
                f"config.json expects {digest[:12]}…)"
            )
        if name == STATE_FILE:
            ckpt.state = json.loads(file.read_text())
            continue
        try:
            ckpt.weights[part] = load_file(str(file))
        except Exception as e:  # safetensors raises several types for bad headers
            raise CheckpointError(f"{file}: unreadable safetensors file ({e})") from None
    missing = (wanted or set()) - set(ckpt.weights)
    if missing:
        raise CheckpointError(f"{path}: no {', '.join(sorted(missing))} weights in this checkpoint")
    return ckpt


def load_into(module: nn.Module, tensors: dict[str, torch.Tensor], file: Path | str) -> None:
    """Load `tensors` into `module`, failing with the file name and every name/shape mismatch."""
    expected = module.state_dict()
    problems = []
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    for k in sorted(set(expected) & set(tensors)):
        if tuple(expected[k].shape) != tuple(tensors[k].shape):
            problems.append(
                f"{k} has shape {tuple(tensors[k].shape)}, config expects {tuple(expected[k].shape)}"
            )
    if problems:
        raise CheckpointError(f"{file}: does not match its config: {'; '.join(problems[:5])}")
    for k in sorted(tensors):
        t = tensors[k]
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{file}: tensor {k} holds NaN or infinite values")
    module.load_state_dict(tensors)


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state into tensors (per-parameter moments) and JSON (hyper-parameters)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict[str, Any], file: Path | str
) -> None:
    """Restore what `optimizer_to_tensors` split."""
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    for key, v in info.get("scalars", {}).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    n_params = sum(len(g["params"]) for g in opt.param_groups)
    if any(i >= n_params for i in state) or len(info["param_groups"]) != len(opt.param_groups):
        raise CheckpointError(f"{file}: optimizer state does not match the model's parameters")
    try:
        opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{file}: optimizer state does not load ({e})") from None
