"""Export a training checkpoint as a bundled model (relbench/bundled/NAME) with its model card.

    python scripts/bundle.py --checkpoint RUN/checkpoints/step_0008000 --log RUN/log.jsonl \
        --name rtep-micro [--eval leaderboards/runs/rtep-micro/core] [--note "text"]

The card is written from what the files say: the training config stored in the checkpoint
(data, recipe, sampler), its step and training seconds, this machine, and — with `--eval` — the
accuracy on `core` from a finished `relbench eval` run of these weights (its summary.json). The
run's checkpoint hash must be the checkpoint's EMA hash, which export keeps, so a card cannot
quote another model's numbers: evaluate `dit:CHECKPOINT` or the exported model, then export (again)
with `--eval`; the weights, and so the model's checkpoint hash, stay the same.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _recipe(
    train: dict[str, Any], sampling: dict[str, Any], refine: dict[str, Any] | None = None
) -> list[tuple[str, Any]]:
    from relbench.dit.model import ModelConfig
    from relbench.dit.objectives import sampling_scheduler

    m, lay = train["model"], train.get("layout", {})
    shape = ModelConfig.model_validate(m)
    side, grid = shape.input_size, shape.grid
    shift = float(sampling.get("shift", 1.0))
    scheduler = type(sampling_scheduler(train["objective"], shift)).__name__
    layout = _layout(lay) + "".join(
        f"; from step {p['step']} (`layout_phases`): {_layout(p['layout'])}" for p in train.get("layout_phases") or []
    )
    q = lay.get("order_bias", 0.5)
    order = "the paper's: each colour the subject half the time" if q == 0.5 else (
        f"red is the subject with p = {q} for {lay.get('order_bias_hold_steps')} steps, then p falls "
        f"linearly to 0.5 over {lay.get('order_bias_ramp_steps')} steps (`layout.order_bias`)"
    )
    noise = (
        "uniform" if not train.get("time_std") else
        f"logit-normal(mean {train['time_mean']}, std {train['time_std']})"
    )
    return [
        ("size preset", f"{m['preset']} (head dim {m['head_dim']})"),
        ("text encoder", m["encoder"]),
        ("input", f"{m['space']}, {m['image_size']} px"
                  + (f" → {m['latent_channels']}×{side}×{side} latents" if m["space"] == "latent" else "")
                  + f", patch {m['patch_size']} ({grid}×{grid} tokens)"),
        ("layouts", layout),
        ("subject colour", order),
        ("captions", "the paper's: 22 phrases, each colour word kept with p = 0.5"),
        ("objective", train["objective"]),
        ("noise levels", noise),
        ("batch / lr / warm-up", f"{train['batch_size']} / {train['lr']} / {train['warmup_steps']}"),
        ("learning-rate schedule", _schedule(train)),
        ("EMA decay / caption dropout", f"{train['ema_decay']} / {train['caption_dropout']}"),
        ("bf16 autocast", train["bf16"]),
        ("sampler", f"{scheduler}, shift {shift}; relbench defaults 14 steps, CFG 4.5"),
    ] + ([(
        "autoencoder",
        f"`TinyAutoencoder` (width {train['autoencoder']['width']}, stride {m['latent_downsample']}, "
        f"{m['latent_channels']} latent channels) trained first for {train['autoencoder_steps']} steps "
        f"at batch {train['autoencoder_batch']} on the same layouts, then frozen",
    )] if m["space"] == "latent" else []) + ([("decoder refinement", _refinement(refine))] if refine else [])


def _layout(lay: dict[str, Any]) -> str:
    """A `LayoutConfig` (relbench.dit.layouts) in words."""
    from relbench.dit.layouts import LayoutConfig

    c = LayoutConfig.model_validate(lay)
    if c.is_paper:
        return "the paper's (centres uniform in [17, 111]/128)"
    spread = (f"λ_min {c.spread_start} → 1 over {c.spread_ramp_steps} steps" if c.spread_ramp_steps
              else f"λ_min {c.spread_start}")
    text = (f"curriculum (`relbench.dit.layouts`): relations balanced = {c.balance_relations}, {spread}, "
            f"spread power {c.spread_power}, canonical distance {c.canonical_distance}")
    if c.cardinal_offset_scale != 1.0:
        text += f", cardinal layouts' offset on the unnamed axis × {c.cardinal_offset_scale}"
    return text


def _refinement(refine: dict[str, Any]) -> str:
    """The `decoder_refine` section of a checkpoint in words (relbench.dit.refine)."""
    c = refine["config"]
    when = f"at step {refine['step']}" if "step" in refine else "after training"
    text = (
        f"{when}, `relbench refine-decoder` fitted the decoder alone to the DiT's guided "
        f"(CFG {c['guidance']}) x0 predictions from noise levels σ ∈ [{c['sigma_min']}, {c['sigma_max']}]: "
        f"{c['steps']} steps at batch {c['batch_size']}, lr {c['lr']}, {refine['wall_s'] / 60:.1f} min "
        f"on {refine['threads']} thread(s); the transformer and the encoder are unchanged"
    )
    ev = refine.get("eval")
    if ev:
        text += (f". Strict accuracy on {ev['prompts']} `core` prompts (seed 0): "
                 f"{ev['strict_before']:.3f} before, {ev['strict_after']:.3f} after")
    if refine.get("previous"):
        text += f". It refined a decoder refined before: {_refinement(refine['previous'])}"
    return text


def _schedule(train: dict[str, Any]) -> str:
    """The learning-rate schedule in words, from the stored config's fields."""
    if train.get("lr_decay_start") is None:
        return "constant after the warm-up"
    low = train.get("lr_min_ratio", 0.1)
    parts = [f"half cosine to {low} × lr from step {train['lr_decay_start']} over {train['lr_decay_steps']} steps"]
    for r in train.get("lr_restarts") or []:
        parts.append(f"warm restart at step {r['step']} to {r['peak_ratio']} × lr, half cosine to "
                     f"{low} × lr from step {r['decay_start']} over {r['decay_steps']} steps")
    return "; ".join(parts)


def _config_file(train: dict[str, Any], name: str) -> Path | None:
    """A file in configs/train whose config is the stored one (NAME.json first), if any."""
    from relbench.dit.train import TrainConfig

    folder = ROOT / "configs" / "train"
    candidates = sorted(folder.glob("*.json"), key=lambda path: (path.name != f"{name}.json", path.name))
    try:  # through today's schema, so fields added since (with their defaults) compare equal
        stored = TrainConfig.model_validate(train).model_dump()
    except ValueError:
        return None
    for path in candidates:
        try:
            if TrainConfig.load(path).model_dump() == stored:
                return path.relative_to(ROOT)
        except ValueError:
            continue
    return None


def _evaluated_hash(eval_dir: Path) -> str | None:
    model = json.loads((eval_dir / "run.json").read_text()).get("model", {})
    return model.get("weights_hash") or model.get("checkpoint_hash")  # older runs: weights only


def _accuracy(eval_dir: Path) -> str:
    run = json.loads((eval_dir / "run.json").read_text())
    summary = json.loads((eval_dir / "summary.json").read_text())
    m = summary["metrics"]
    lo, hi = m["overall_ci95"]
    lines = [
        f"`relbench eval --model NAME --suite {run.get('suite')}`, seeds {run.get('seeds')}: "
        f"{m['n_scored']} images scored ({m['n_unscorable']} unscorable), scorer "
        f"`{run.get('scorer')}` v{run.get('scorer_version')} "
        f"(config {str(run.get('scorer_config_hash'))[:12]}).",
        "",
        "| metric | value |",
        "|---|---|",
        f"| overall (strict relation ∧ shapes ∧ colours) | {m['overall']:.3f} [95 % CI {lo:.3f}–{hi:.3f}] |",
        f"| strict relation | {m['relation_strict']:.3f} |",
        f"| loose relation | {m['relation_loose']:.3f} |",
        f"| shapes / colours found | {m['shape']:.3f} / {m['color']:.3f} |",
    ]
    rel = m["breakdowns"]["relation"]
    lines.append("| per relation | " + ", ".join(f"{k} {v['accuracy']:.2f}" for k, v in rel.items()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--eval", type=Path, default=None, help="a finished `relbench eval` run on core")
    p.add_argument("--note", default="", help="text for the card's 'Status' section")
    p.add_argument("--threads", type=int, default=1, help="torch threads the run trained with")
    p.add_argument("--hardware", default="", help="anything else the card should say about the machine")
    p.add_argument("--root", type=Path, default=None, help="bundled models' folder (default relbench/bundled)")
    a = p.parse_args(argv)

    import torch

    from relbench.dit.bundle import BUNDLED_ROOT, export_bundled
    from relbench.dit.checkpoint import read_checkpoint

    ckpt = read_checkpoint(a.checkpoint, ["ema"])
    train, state = ckpt.meta["train"], ckpt.state or {}
    sampling = ckpt.meta.get("sampling") or {}
    out = (a.root or BUNDLED_ROOT) / a.name
    recipe = "\n".join(f"| {k} | {v} |" for k, v in _recipe(train, sampling, ckpt.meta.get("decoder_refine")))
    hw = (f"{platform.machine()} CPU, {os.cpu_count()} cores, {a.threads} torch thread(s), "
          f"torch {torch.__version__}, {platform.system()}" + (f"; {a.hardware}" if a.hardware else ""))
    config_file = _config_file(train, a.name)
    if config_file is not None:
        how = f"`relbench train {config_file.as_posix()}`, which holds the recipe below"
    else:
        how = "`relbench train` and the recipe below (stored in the checkpoint's config.json)"
    card = [
        f"# {a.name}",
        "",
        "A PixArt-style DiT (diffusers `PixArtTransformer2DModel`) trained from scratch by relbench "
        f"on images from its renderer (two flat shapes, one red and one blue, on grey), with {how}.",
        "",
        "## Recipe",
        "",
        "| field | value |",
        "|---|---|",
        recipe,
        "",
        "## Training",
        "",
        f"{state.get('step')} optimizer steps ({int(state.get('step', 0)) * train['batch_size']:,} "
        f"training images), {float(state.get('wall_s', 0)) / 60:.1f} minutes of training time "
        f"(evaluations excluded) on {hw}. `train_log.jsonl` has the loss and the periodic "
        f"evaluation ({train.get('eval_prompts')} `core` prompts, seed 0, EMA weights) against steps and "
        "seconds.",
        "",
        "## Accuracy on `core`",
        "",
    ]
    if a.eval:
        from relbench.dit.checkpoint import sampling_hash

        weights = sampling_hash(json.loads((a.checkpoint / "config.json").read_text())["files"])
        if _evaluated_hash(a.eval) != weights:
            sys.exit(f"error: {a.eval} evaluated weights {_evaluated_hash(a.eval)}, not the weights "
                     f"(EMA and decoder) of {a.checkpoint} ({weights}): evaluate dit:{a.checkpoint} or the exported model")
    card.append(_accuracy(a.eval) if a.eval else "Not evaluated yet.")
    if a.note:
        card += ["", "## Status", "", a.note]
    export_bundled(a.checkpoint, out, "\n".join(card) + "\n", log_path=a.log, sampling=sampling)
    print(out)


if __name__ == "__main__":
    main()
