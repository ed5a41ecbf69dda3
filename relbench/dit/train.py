"""Training a bundled DiT from scratch on an infinite stream of rendered scenes.

The data stream, the noise, the timesteps and the caption dropout of step k on rank r are all
drawn from generators seeded by (seed, r, k), so a run resumed from a checkpoint at step k
continues exactly as the uninterrupted run would have (given the same number of processes:
under `torchrun` rank r draws its own batch and DDP averages gradients, see
`TrainConfig.batch_size`; rank 0 alone writes checkpoints and the log). Checkpoints go to
`OUT/checkpoints/step_NNNNNNN/` (atomic; the last `keep_checkpoints` kept), the log to
`OUT/log.jsonl` (rows with `loss`, and evaluation rows with `strict_accuracy`).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from relbench import distributed
from relbench.dit.autoencoder import AutoencoderConfig, TinyAutoencoder, to_tensor, train_autoencoder
from relbench.dit.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_into,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_checkpoint,
    write_checkpoint,
)
from relbench.dit.encoders import TextEncoder
from relbench.dit.layouts import LayoutConfig
from relbench.dit.model import DiT, ModelConfig
from relbench.dit.objectives import NoiseProcess
from relbench.dit.sample import DiTPipeline, build_parts
from relbench.scoring.layout import colour_layout_correct

LOG_FILE = "log.jsonl"
CHECKPOINTS = "checkpoints"

Batch = tuple[np.ndarray, list[str]]
"""(images (B, H, W, 3) uint8, captions)."""
Source = Callable[[int, int, int], Batch]
"""(step, rank, batch_size) → a batch; must be a pure function of its arguments."""


class LrRestart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    step: int = Field(ge=1)
    peak_ratio: float = Field(gt=0.0)
    decay_start: int = Field(ge=1)
    decay_steps: int = Field(ge=1)

    @model_validator(mode="after")
    def _decay_after_restart(self) -> LrRestart:
        if self.decay_start < self.step:
            raise ValueError(f"restart at step {self.step}: decay_start {self.decay_start} comes before it")
        return self


class LayoutPhase(BaseModel):
    """From optimizer step `step` on, training scenes follow `layout` (its schedules still count
    absolute steps). How a finished run is extended with other layouts without rewriting those
    its earlier steps were trained on."""

    model_config = ConfigDict(extra="forbid")

    step: int = Field(ge=1)
    layout: LayoutConfig


class TrainConfig(BaseModel):
    """A training run. Loaded from JSON (configs/train/*.json) plus typed `key=value` overrides."""

    model_config = ConfigDict(extra="forbid")

    model: ModelConfig = Field(default_factory=ModelConfig)
    objective: Literal["eps", "v", "flow", "x0"] = "eps"
    time_mean: float = 0.0
    time_std: float = 0.0
    """Training noise levels: uniform when time_std is 0, else logit-normal (SD3)."""
    steps: int = 10_000
    batch_size: int = 64
    """Per process. Under `torchrun --nproc_per_node N` each rank draws its own batch
    (`source(step, rank, batch_size)`) and DDP averages the gradients, so one step sees a global
    batch of N × batch_size and `steps`, `lr` and `warmup_steps` count optimizer steps on it."""
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    lr_decay_start: int | None = None
    """Step from which the learning rate falls along a half cosine from `lr` to
    `lr * lr_min_ratio` over `lr_decay_steps` steps, then stays there (None: constant after the
    warm-up). Once a model places its objects right, the lower rate refines the shapes."""
    lr_decay_steps: int = Field(1000, ge=1)
    lr_min_ratio: float = Field(0.1, ge=0.0, le=1.0)
    lr_restarts: list[LrRestart] = Field(default_factory=list)
    """Warm restarts (SGDR) after the first decay, in step order: from `step` the rate is
    `lr * peak_ratio`, falling along its own half cosine to `lr * lr_min_ratio` from
    `decay_start` over `decay_steps` steps. This is how a finished run is extended without
    rewriting the schedule its earlier steps were trained under."""
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    caption_dropout: float = 0.1
    seed: int = 0
    bf16: bool = False
    """bf16 autocast on CPU (forward/backward only; weights and optimizer stay float32)."""
    num_threads: int | None = None
    log_every: int = 25
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    keep_best: bool = True
    """Also keep the checkpoint of the best periodic evaluation (strict accuracy): a curriculum
    can move past a model's best point, and the last checkpoints would not hold it. The periodic
    evaluation is small (`eval_prompts` × `eval_seeds`), so evaluate the kept one in full."""
    eval_every: int = 1000
    eval_prompts: int = 24
    """Prompts of the `core` suite used for periodic evaluation (evenly spaced; 0 disables)."""
    eval_seeds: list[int] = Field(default_factory=lambda: [0])
    eval_steps: int = 14
    eval_guidance: float = 4.5
    sample_shift: float = Field(1.0, gt=0.0)
    """Flow-path sampler time shift that fits these noise levels (SD3's shift: larger images
    decide their layout at higher noise). Used by the periodic evaluation and stored in every
    checkpoint as its default sampling setting."""
    layout: LayoutConfig = Field(default_factory=LayoutConfig)
    """Training layouts: the paper's by default, or a relation-balanced curriculum."""
    geometry: Literal["relbench", "paper"] = "relbench"
    """How training scenes are drawn (relbench.scene.GEOMETRIES); recorded in every checkpoint,
    so `relbench eval` scores the model with the matching detector."""
    layout_phases: list[LayoutPhase] = Field(default_factory=list)
    """Later layouts, in step order: from each phase's step, its layout replaces `layout`."""
    autoencoder: AutoencoderConfig = Field(default_factory=AutoencoderConfig)
    autoencoder_steps: int = 1500
    autoencoder_batch: int = 64

    @model_validator(mode="after")
    def _restarts_in_order(self) -> TrainConfig:
        steps = [r.step for r in self.lr_restarts]
        if steps != sorted(set(steps)):
            raise ValueError(f"lr_restarts: steps must increase, got {steps}")
        phases = [p.step for p in self.layout_phases]
        if phases != sorted(set(phases)):
            raise ValueError(f"layout_phases: steps must increase, got {phases}")
        if steps and self.lr_decay_start is not None and steps[0] <= self.lr_decay_start:
            raise ValueError(f"lr_restarts: the first restart (step {steps[0]}) must come after "
                             f"lr_decay_start ({self.lr_decay_start})")
        return self

    def learning_rate(self, step: int) -> float:
        """The rate of optimizer step `step` (0-based): linear warm-up, then the optional decay."""
        def cosine(peak: float, start: int, length: int) -> float:
            """`peak` until `start`, then a half cosine down to lr_min_ratio over `length` steps."""
            done = min(1.0, max(0, step - start) / length)
            return self.lr_min_ratio + (peak - self.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * done))

        for restart in reversed(self.lr_restarts):
            if step >= restart.step:
                return self.lr * cosine(restart.peak_ratio, restart.decay_start, restart.decay_steps)
        rate = self.lr * min(1.0, (step + 1) / max(1, self.warmup_steps))
        if self.lr_decay_start is not None:
            rate *= cosine(1.0, self.lr_decay_start, self.lr_decay_steps)
        return rate

    def layout_at(self, step: int) -> LayoutConfig:
        """The layout config that optimizer step `step` draws its scenes from."""
        current = self.layout
        for phase in self.layout_phases:
            if step >= phase.step:
                current = phase.layout
        return current

    @classmethod
    def load(cls, path: Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
        """Config from a JSON file (or the defaults) with `a.b=value` overrides (values parsed as
        JSON when they parse, else taken as strings; pydantic then checks their types)."""
        data: dict[str, Any] = {}
        if path is not None:
            try:
                data = json.loads(Path(path).read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e})") from None
        for item in overrides:
            apply_override(data, item)
        return cls.model_validate(data)


def apply_override(data: dict[str, Any], item: str, root: type[BaseModel] | None = None) -> None:
    """Set `a.b=value` in the raw config `data` of the pydantic model `root` (default
    TrainConfig), refusing keys the model does not have (with a "did you mean")."""
    from relbench.scene import did_you_mean

    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ValueError(f"override {item!r} is not of the form key=value")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    parts = key.split(".")
    node, model = data, root or TrainConfig
    for i, part in enumerate(parts):
        fields = model.model_fields if model is not None else {}
        if model is not None and part not in fields:
            raise ValueError(f"unknown config key {key!r}{did_you_mean(part, fields)}")
        if i == len(parts) - 1:
            node[part] = value
        else:
            node = node.setdefault(part, {})
            ann = fields[part].annotation
            model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def renderer_source(
    image_size: int, seed: int, layout: LayoutConfig | Callable[[int], LayoutConfig] | None = None,
    geometry: str = "relbench",
) -> Source:
    """Random training scenes rendered at `image_size` with paper captions (relbench.render and
    relbench.data), a pure function of (seed, step, rank). `layout` picks where the objects go
    (relbench.dit.layouts; default the paper's layouts), or maps a step to its layout
    (`TrainConfig.layout_at`); `geometry` how the scenes are drawn (relbench.render)."""
    from relbench.data import sample_caption
    from relbench.dit.layouts import training_scene
    from relbench.render import render

    fixed = layout or LayoutConfig()
    layout_at = fixed if callable(fixed) else (lambda step: fixed)

    def source(step: int, rank: int, batch_size: int) -> Batch:
        rng = random.Random(f"train:{seed}:{rank}:{step}")
        config = layout_at(step)
        scenes = [training_scene(rng, config, step) for _ in range(batch_size)]
        images = np.stack([render(s, image_size, geometry=geometry) for s in scenes])
        return images, [sample_caption(s, rng) for s in scenes]

    return source


class EMA:
    """Exponential moving average of parameters, with the usual (1+n)/(10+n) warm-up."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v, 1 - d)
            else:
                self.shadow[k].copy_(v)


def _step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_000_007 + rank * 1_000_003 + step) % 2**63)


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint under OUT/checkpoints (temporary directories ignored)."""
    root = Path(out) / CHECKPOINTS
    if not root.is_dir():
        return None
    done = sorted(p for p in root.iterdir() if p.name.startswith("step_") and (p / "config.json").exists())
    return done[-1] if done else None


class Trainer:
    """Holds the state of one run; `run()` trains to `config.steps` (or `stop_at`)."""

    def __init__(
        self,
        config: TrainConfig,
        out: Path,
        *,
        source: Source | None = None,
        encoder: TextEncoder | None = None,
        evaluator: Callable[[DiTPipeline], dict[str, Any]] | None = None,
        progress: bool = True,
    ) -> None:
        self.config, self.out, self.progress = config, Path(out), progress
        proc = distributed.process_info()
        self.rank, self.world = proc.rank, proc.world_size
        if self.world > 1:
            distributed.init_process_group("gloo")  # before the autoencoder, which rank 0 sends
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        self.source = source or renderer_source(config.model.image_size, config.seed,
                                                config.layout_at, config.geometry)
        self.evaluator = evaluator if evaluator is not None else _core_evaluator(config)
        torch.manual_seed(config.seed)
        self.model, self.encoder = build_parts(config.model, encoder)
        self.noise = NoiseProcess(config.objective, config.time_mean, config.time_std)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.ema = EMA(self.model, config.ema_decay)
        self.autoencoder: TinyAutoencoder | None = None
        self.decoder_refine: dict[str, Any] | None = None
        """A resumed checkpoint's `decoder_refine` section (relbench.dit.refine): its decoder
        goes on into this run's checkpoints, and so does the record of how it was made."""
        self.step, self.wall_s = 0, 0.0
        self._null = self.encoder.null()
        self._resume_or_start()
        self.ddp_model: torch.nn.Module = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp_model = DistributedDataParallel(self.model)  # broadcasts rank 0's weights

    # ---- state -------------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {
            "model": self.config.model.model_dump(),
            "encoder": self.encoder.describe(),
            "caption_dim": self.encoder.dim,
            "objective": self.config.objective,
            "autoencoder": self.autoencoder.config.model_dump() if self.autoencoder else None,
            "train": self.config.model_dump(),
            "sampling": {"shift": self.config.sample_shift},
            "geometry": self.config.geometry,
        } | ({"decoder_refine": self.decoder_refine} if self.decoder_refine else {})

    def save(self) -> Path:
        """Write a checkpoint of the current step (rank 0 only) and prune old ones."""
        path = self.out / CHECKPOINTS / f"step_{self.step:07d}"
        replicated = dict(self.model.state_dict())
        if self.autoencoder is not None:
            ae_state = self.autoencoder.state_dict()
            replicated.update({f"autoencoder.{k}": v for k, v in ae_state.items()})
        distributed.assert_in_sync(replicated, f"model and autoencoder weights at step {self.step}")
        if self.rank != 0:
            return path
        opt_tensors, opt_info = optimizer_to_tensors(self.opt)
        weights = {"model": self.model.state_dict(), "ema": self.ema.shadow, "optimizer": opt_tensors}
        if self.autoencoder is not None:
            weights["autoencoder"] = self.autoencoder.state_dict()
        state = {"step": self.step, "wall_s": self.wall_s, "world_size": self.world,
                 "optimizer": opt_info}
        write_checkpoint(path, Checkpoint(self._meta(), weights, state))
        done = sorted(p for p in (self.out / CHECKPOINTS).iterdir() if p.name.startswith("step_"))
        best = self.best_eval_step() if self.config.keep_best else None
        for old in done[: max(0, len(done) - self.config.keep_checkpoints)]:
            import shutil

            if best is not None and old.name == f"step_{best:07d}":
                continue
            shutil.rmtree(old, ignore_errors=True)
        return path

    def best_eval_step(self) -> int | None:
        """The step whose periodic evaluation had the highest strict accuracy (the later one on a
        tie), from the log; None before the first evaluation."""
        log = self.out / LOG_FILE
        if not log.exists():
            return None
        best: tuple[float, int] | None = None
        for line in log.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "strict_accuracy" in row and row.get("step", 0) <= self.step:
                key = (float(row["strict_accuracy"]), int(row["step"]))
                best = key if best is None or key > best else best
        return None if best is None else best[1]

    def _resume_or_start(self) -> None:
        path = latest_checkpoint(self.out)
        if path is None:
            if self.config.model.space == "latent":
                self.autoencoder = self._train_autoencoder()
            return
        ckpt = read_checkpoint(path)
        stored = ckpt.meta.get("model")
        if stored != self.config.model.model_dump():
            now = self.config.model.model_dump()
            diff = sorted(k for k in now if (stored or {}).get(k) != now[k])
            raise CheckpointError(
                f"{path / 'config.json'}: checkpoint model config differs from this run's in {diff}; "
                "use a new output directory"
            )
        if ckpt.meta.get("objective") != self.config.objective:
            raise CheckpointError(
                f"{path / 'config.json'}: checkpoint objective {ckpt.meta.get('objective')!r}, "
                f"this run's {self.config.objective!r}"
            )
        load_into(self.model, ckpt.weights["model"], path / "model.safetensors")
        ema_model = DiT(self.config.model, self.encoder.dim)
        load_into(ema_model, ckpt.weights["ema"], path / "ema.safetensors")
        self.ema.shadow = {k: v.detach().clone() for k, v in ema_model.state_dict().items()}
        assert ckpt.state is not None
        optimizer_from_tensors(
            self.opt, ckpt.weights["optimizer"], ckpt.state["optimizer"], path / "optimizer.safetensors"
        )
        if ckpt.meta.get("autoencoder"):
            self.autoencoder = TinyAutoencoder(AutoencoderConfig.model_validate(ckpt.meta["autoencoder"]))
            load_into(self.autoencoder, ckpt.weights["autoencoder"], path / "autoencoder.safetensors")
            self.autoencoder.eval().requires_grad_(False)
        self.decoder_refine = ckpt.meta.get("decoder_refine")
        self.step, self.wall_s = int(ckpt.state["step"]), float(ckpt.state["wall_s"])
        self._truncate_log()

    def _truncate_log(self) -> None:
        """Drop log rows written after the checkpoint we resume from (they will be redone)."""
        log = self.out / LOG_FILE
        if self.rank != 0 or not log.exists():
            return
        keep = []
        for line in log.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("step", 0) <= self.step:
                keep.append(line)
        log.write_text("".join(k + "\n" for k in keep))

    def _train_autoencoder(self) -> TinyAutoencoder:
        cfg = self.config
        batch = lambda k: self.source(k, 10_000, cfg.autoencoder_batch)[0]  # noqa: E731
        if self.rank == 0:
            ae, losses = train_autoencoder(
                cfg.autoencoder, batch, steps=cfg.autoencoder_steps, seed=cfg.seed
            )
        else:  # every rank must encode with the same autoencoder: rank 0's, sent below
            ae, losses = TinyAutoencoder(cfg.autoencoder).eval().requires_grad_(False), []
        if self.world > 1:
            distributed.broadcast_module(ae)
            scale = distributed.broadcast_float(ae.config.scale)
            ae.config = ae.config.model_copy(update={"scale": scale})
        self._log({"step": 0, "autoencoder_loss": losses[-1] if losses else None})
        return ae

    # ---- training ----------------------------------------------------------------------
    def pipeline(self, use_ema: bool = True) -> DiTPipeline:
        """A sampling pipeline over the current (EMA) weights."""
        model = DiT(self.config.model, self.encoder.dim)
        model.load_state_dict(self.ema.shadow if use_ema else self.model.state_dict())
        return DiTPipeline(model, self.encoder, self.config.objective, self.autoencoder,
                           shift=self.config.sample_shift)

    def loss_on(self, images: np.ndarray, captions: list[str], gen: torch.Generator) -> torch.Tensor:
        """The objective's loss on one batch (noise, times and dropout drawn from `gen`)."""
        cfg = self.config
        x0 = to_tensor(images)  # (B, 3, H, W)
        if self.autoencoder is not None:
            with torch.no_grad():
                x0 = self.autoencoder.encode(x0)  # (B, C, h, w)
        states, mask = self.encoder.encode(captions)  # (B, L, D), (B, L)
        drop = torch.rand(len(captions), generator=gen) < cfg.caption_dropout  # (B,)
        states = torch.where(drop[:, None, None], self._null[0], states)
        mask = torch.where(drop[:, None], self._null[1], mask)
        x_t, t, target = self.noise.corrupt(x0, gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            pred = self.ddp_model(x_t, t, states, mask)
        return torch.nn.functional.mse_loss(pred.float(), target)

    def train_step(self) -> float:
        cfg = self.config
        images, captions = self.source(self.step, self.rank, cfg.batch_size)
        gen = _step_generator(cfg.seed, self.rank, self.step)
        for g in self.opt.param_groups:
            g["lr"] = cfg.learning_rate(self.step)
        self.model.train()
        loss = self.loss_on(images, captions, gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        self.step += 1
        self.ema.update(self.model, self.step)
        return float(loss.detach())

    def run(self, stop_at: int | None = None) -> dict[str, Any]:
        """Train until `config.steps`, checkpointing every `checkpoint_every` steps and at the end.

        `stop_at` halts earlier without a final checkpoint, as a kill would (used by tests)."""
        from tqdm.auto import tqdm

        cfg = self.config
        end = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
        quiet = not self.progress or self.rank != 0
        bar = tqdm(total=end, initial=self.step, disable=quiet, desc="train")
        last: dict[str, Any] = {}
        losses: list[float] = []
        while self.step < end:
            t0 = time.perf_counter()
            losses.append(self.train_step())
            self.wall_s += time.perf_counter() - t0
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == end:
                loss = distributed.mean_across(float(np.mean(losses)))  # the global batch's loss
                last = {"step": self.step, "wall_s": round(self.wall_s, 3), "loss": loss,
                        "lr": self.opt.param_groups[0]["lr"]}
                self._log(last)
                bar.set_postfix(loss=f"{last['loss']:.4f}")
                losses = []
            if cfg.eval_every and cfg.eval_prompts and self.step % cfg.eval_every == 0:
                last = {**last, **self.evaluate()}
            if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                self.save()
        bar.close()
        return last

    def evaluate(self) -> dict[str, Any]:
        """Generate + score a subset of `core` with the EMA weights; logs and returns the row."""
        if self.rank != 0 or self.evaluator is None:
            return {}
        t0 = time.perf_counter()
        row = {"step": self.step, "wall_s": round(self.wall_s, 3), **self.evaluator(self.pipeline())}
        row["eval_s"] = round(time.perf_counter() - t0, 3)
        self._log(row)
        return row

    def _log(self, row: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / LOG_FILE, "a") as f:
            f.write(json.dumps(row) + "\n")


def _core_evaluator(config: TrainConfig) -> Callable[[DiTPipeline], dict[str, Any]] | None:
    if not config.eval_every or not config.eval_prompts:
        return None

    def evaluate(pipe: DiTPipeline) -> dict[str, Any]:
        return evaluate_suite(
            pipe, "core", n_prompts=config.eval_prompts, seeds=config.eval_seeds,
            steps=config.eval_steps, guidance=config.eval_guidance,
        )

    return evaluate


def evaluate_suite(
    pipe: DiTPipeline,
    suite: str = "core",
    *,
    n_prompts: int | None = None,
    seeds: Sequence[int] = (0,),
    steps: int = 14,
    guidance: float = 4.5,
    detector: str = "default",
) -> dict[str, Any]:
    """Strict relation accuracy and overall accuracy (relbench scorer) on evenly spaced prompts."""
    from relbench.scoring import load_detector, score_image
    from relbench.suites import get_suite

    prompts = list(get_suite(suite).prompts)
    if n_prompts is not None and n_prompts < len(prompts):
        idx = np.linspace(0, len(prompts) - 1, n_prompts).round().astype(int)
        prompts = [prompts[i] for i in idx]
    jobs = [(p, s) for p in prompts for s in seeds]
    images = pipe.generate([p.prompt for p, _ in jobs], [s for _, s in jobs], steps=steps, guidance=guidance)
    det = load_detector(detector)
    rows = [score_image(img, p.spec, det).to_dict() for img, (p, _) in zip(images, jobs)]
    strict = [bool(r.get("relation_strict")) for r in rows]
    overall = [bool(r.get("correct")) for r in rows]
    layout = [colour_layout_correct(img, p.spec) for img, (p, _) in zip(images, jobs)]
    judged = [x for x in layout if x is not None]
    # Split by which colour is the subject: a model that has learnt "red goes on the subject side"
    # but not the binding scores 1 on one half and 0 on the other.
    by_subject: dict[str, list[bool]] = {}
    for verdict, (p, _) in zip(layout, jobs):
        if verdict is not None:
            by_subject.setdefault(str(p.spec.subject.color), []).append(verdict)
    return {
        "n": len(rows), "strict_accuracy": float(np.mean(strict)), "overall": float(np.mean(overall)),
        "colour_layout": float(np.mean(judged)) if judged else None, "colour_layout_n": len(judged),
        "colour_layout_by_subject": {c: round(float(np.mean(v)), 4) for c, v in sorted(by_subject.items())},
    }


def train(
    config: TrainConfig, out: Path, *, progress: bool = True, source: Source | None = None,
    encoder: TextEncoder | None = None,
) -> dict[str, Any]:
    """Train (or resume) the run in `out`; returns the last log row."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return Trainer(config, out, source=source, encoder=encoder, progress=progress).run()
