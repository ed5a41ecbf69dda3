"""Bundled models: a training checkpoint reduced to what sampling needs, plus its model card.

    relbench/bundled/<name>/
        config.json        the checkpoint format's config (model, encoder, objective, autoencoder,
                           training config) with the sha256 of every tensor file, plus `bundle`:
                           the source step, the source EMA hash and the hashes of the files below
        ema.safetensors    EMA weights only (no raw weights, no optimizer state)
        autoencoder.safetensors   (latent-space models)
        train_log.jsonl    the training log up to the exported step
        README.md          the model card

It is an ordinary checkpoint directory, so `load_pipeline` (and the `dit:` / bundled model
names) read it with the usual checksum checks.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import relbench
from relbench.dit.checkpoint import (
    Checkpoint,
    CheckpointError,
    read_checkpoint,
    read_meta,
    replace_dir,
    write_checkpoint,
)
from relbench.models.dit_adapter import BUNDLED_ROOT, list_bundled
from relbench.runlog import file_hash

LOG_FILE = "train_log.jsonl"
CARD_FILE = "README.md"

__all__ = ["BUNDLED_ROOT", "export_bundled", "list_bundled", "verify_bundle"]


def export_bundled(
    checkpoint_dir: Path,
    out_dir: Path,
    card_text: str,
    log_path: Path | None = None,
    sampling: dict[str, Any] | None = None,
) -> Path:
    """Write the EMA weights of `checkpoint_dir` (+ its autoencoder), its training log (rows up
    to the checkpoint's step) and a model card (`card_text` plus a generated provenance section)
    to `out_dir`, replacing it atomically. Returns `out_dir`.

    `sampling` (e.g. {"shift": 3.0}) becomes the model's default sampler settings."""
    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    meta = read_meta(checkpoint_dir)
    files = meta.get("files", {})
    if "ema.safetensors" not in files:
        raise CheckpointError(f"{checkpoint_dir}: no EMA weights to export (ema.safetensors)")
    parts = ["ema"] + (["autoencoder"] if meta.get("autoencoder") else [])
    ckpt = read_checkpoint(checkpoint_dir, parts)
    if sampling is not None:
        ckpt.meta["sampling"] = dict(sampling)
    state = ckpt.state or {}
    step = state.get("step", meta.get("bundle", {}).get("step"))
    if step is None:
        raise CheckpointError(f"{checkpoint_dir}: no step in state.json; is this a training checkpoint?")

    stage = out_dir.parent / f".{out_dir.name}.export-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        _write_bundle(stage, ckpt, parts, files["ema.safetensors"], int(step), state, card_text, log_path)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        replace_dir(stage, out_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out_dir


def _write_bundle(
    stage: Path,
    ckpt: Checkpoint,
    parts: list[str],
    source_ema: str,
    step: int,
    state: dict[str, Any],
    card_text: str,
    log_path: Path | None,
) -> None:
    extra: dict[str, str] = {}
    ckpt_meta = {k: v for k, v in ckpt.meta.items() if k != "bundle"}
    bundle: dict[str, Any] = {
        "step": step,
        "wall_s": state.get("wall_s"),
        "source_ema_sha256": source_ema,
        "relbench_version": relbench.__version__,
    }
    write_checkpoint(stage, Checkpoint(ckpt_meta, {k: ckpt.weights[k] for k in parts}))
    if log_path is not None:
        (stage / LOG_FILE).write_text(_log_until(Path(log_path), step))
        extra[LOG_FILE] = file_hash(stage / LOG_FILE)
    (stage / CARD_FILE).write_text(_card(card_text, ckpt_meta, bundle, stage))
    extra[CARD_FILE] = file_hash(stage / CARD_FILE)
    # config.json stays the file that marks the directory complete: rewrite it last.
    config = json.loads((stage / "config.json").read_text())
    config["bundle"] = {**bundle, "files": extra}
    _write_json(stage / "config.json", config)
    verify_bundle(stage)


def verify_bundle(path: Path) -> dict[str, Any]:
    """Check every file of a bundled model against the sha256 in its config.json (tensors, log,
    card); returns its `bundle` section. Raises CheckpointError naming the file."""
    path = Path(path)
    meta = read_meta(path)
    bundle = meta.get("bundle")
    if not isinstance(bundle, dict):
        raise CheckpointError(f"{path / 'config.json'}: no 'bundle' section (not an exported model)")
    read_checkpoint(path)  # verifies every tensor file's sha256
    for name, digest in bundle.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file}: missing (listed in {path / 'config.json'})")
        if file_hash(file) != digest:
            raise CheckpointError(f"{file}: checksum mismatch (edited after export?)")
    return bundle


def _log_until(log: Path, step: int) -> str:
    """Log rows at or before `step` (a log may run past the exported checkpoint)."""
    if not log.is_file():
        raise FileNotFoundError(f"{log}: training log not found")
    keep = []
    for n, line in enumerate(log.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"{log} line {n}: invalid JSON") from None
        if row.get("step", 0) <= step:
            keep.append(line)
    return "".join(k + "\n" for k in keep)


def _card(card_text: str, meta: dict[str, Any], bundle: dict[str, Any], stage: Path) -> str:
    model, enc = meta.get("model", {}), meta.get("encoder", {})
    rows = [
        ("preset", f"{model.get('preset')} (head dim {model.get('head_dim')})"),
        ("text encoder", enc.get("name")),
        ("space", f"{model.get('space')}, {model.get('image_size')} px, patch {model.get('patch_size')}"),
        ("objective", meta.get("objective")),
        ("training step", bundle["step"]),
        ("EMA weights sha256", file_hash(stage / "ema.safetensors")),
        ("relbench version", bundle["relbench_version"]),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return (
        f"{card_text.rstrip()}\n\n## Provenance (generated by relbench.dit.bundle)\n\n"
        f"| field | value |\n|---|---|\n{table}\n"
    )


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
