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
from typing import Any, Iterable

import torch
from torch import nn

from relbench.runlog import file_hash

FORMAT = "relbench-dit-checkpoint"
FORMAT_VERSION = 1
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


def read_meta(path: Path) -> dict[str, Any]:
    """config.json of a checkpoint directory, validated for format and version."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise CheckpointError(f"{file}: not found (is {path} a relbench DiT checkpoint?)")
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file}: corrupt JSON ({e})") from None
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{file}: format {config.get('format')!r}, expected {FORMAT!r}")
    if config.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{file}: format version {config.get('version')!r}, this relbench reads {FORMAT_VERSION}"
        )
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
