"""Training, checkpoints, resume, sampling — on a tiny DiT and a synthetic stand-in data stream."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from relbench.dit import CheckpointError, TrainConfig, Trainer, load_pipeline
from relbench.dit.autoencoder import AutoencoderConfig, train_autoencoder
from relbench.dit.train import latest_checkpoint

SIZE = 16


def toy_source(step: int, rank: int, batch_size: int, size: int = SIZE, side: int = 4):
    """Two flat squares per image, a pure function of (step, rank): stands in for the renderer."""
    rng = np.random.default_rng([step, rank])
    images = np.full((batch_size, size, size, 3), 128, np.uint8)
    captions = []
    for b in range(batch_size):
        (x1, y1), (x2, y2) = rng.integers(0, size - side, size=(2, 2))
        images[b, y1 : y1 + side, x1 : x1 + side] = (255, 0, 0)
        images[b, y2 : y2 + side, x2 : x2 + side] = (0, 0, 255)
        captions.append(f"red square is {'above' if y1 < y2 else 'below'} blue square")
    return images, captions


def tiny_config(**over) -> TrainConfig:
    base = {
        "model": {"preset": "nano", "head_dim": 8, "encoder": "rtep", "encoder_dim": 16,
                  "max_length": 8, "image_size": SIZE, "patch_size": 2},
        "steps": 6, "batch_size": 4, "lr": 1e-3, "warmup_steps": 2, "eval_every": 0,
        "log_every": 1, "checkpoint_every": 3, "ema_decay": 0.9,
    }
    for k, v in over.items():
        base[k] = v
    return TrainConfig.model_validate(base)


def _trainer(cfg, out):
    return Trainer(cfg, out, source=toy_source, progress=False)


def test_config_load_with_typed_overrides(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"steps": 5, "model": {"preset": "nano"}}))
    cfg = TrainConfig.load(path, ["model.preset=micro", "objective=flow", "lr=0.002", "bf16=true"])
    assert (cfg.steps, cfg.model.preset, cfg.objective, cfg.lr, cfg.bf16) == (5, "micro", "flow", 0.002, True)
    with pytest.raises(ValueError, match="did you mean 'batch_size'"):
        TrainConfig.load(path, ["batch_sise=3"])
    with pytest.raises(ValueError, match="did you mean 'preset'"):
        TrainConfig.load(path, ["model.prest=B"])
    with pytest.raises(ValueError, match="objective"):
        TrainConfig.load(path, ["objective=score"])


def test_bundled_configs_validate():
    from pathlib import Path

    files = sorted((Path(__file__).parents[1] / "configs" / "train").glob("*.json"))
    assert files
    for f in files:
        TrainConfig.load(f)


@pytest.mark.parametrize("objective", ["eps", "v", "flow", "x0"])
def test_training_lowers_loss_on_fixed_batch(tmp_path, objective):
    t = _trainer(tiny_config(objective=objective, warmup_steps=1, lr=3e-3), tmp_path)
    images, captions = toy_source(0, 0, 8)

    def fixed_loss():
        with torch.no_grad():
            return float(t.loss_on(images, captions, torch.Generator().manual_seed(5)))

    before = fixed_loss()
    for _ in range(12):
        loss = t.loss_on(images, captions, torch.Generator().manual_seed(5))
        t.opt.zero_grad()
        loss.backward()
        t.opt.step()
    assert fixed_loss() < 0.85 * before


def test_save_load_round_trip_exact(tmp_path):
    t = _trainer(tiny_config(), tmp_path)
    t.run(stop_at=3)
    path = latest_checkpoint(tmp_path)
    assert path is not None and path.name == "step_0000003"
    pipe = load_pipeline(path, use_ema=False)
    for k, v in t.model.state_dict().items():
        assert torch.equal(pipe.model.state_dict()[k], v), k
    ema = load_pipeline(path).model.state_dict()
    assert all(torch.equal(ema[k], v) for k, v in t.ema.shadow.items())


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    cfg = tiny_config()
    full = _trainer(cfg, tmp_path / "full")
    full.run()
    killed = _trainer(cfg, tmp_path / "killed")
    killed.run(stop_at=4)  # checkpoint at 3; step 4 is lost with the "kill"
    resumed = _trainer(cfg, tmp_path / "killed")
    assert resumed.step == 3
    resumed.run()
    assert resumed.step == full.step == 6
    for k, v in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    for k, v in full.opt.state_dict()["state"][0].items():
        assert torch.equal(resumed.opt.state_dict()["state"][0][k], v)
    rows = [json.loads(x) for x in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    full_rows = [json.loads(x) for x in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in rows] == [r["loss"] for r in full_rows]


def test_resume_with_other_config_is_refused(tmp_path):
    _trainer(tiny_config(), tmp_path).run(stop_at=3)
    other = tiny_config(model={**tiny_config().model.model_dump(), "preset": "micro"})
    with pytest.raises(CheckpointError, match="preset"):
        _trainer(other, tmp_path)


def test_corrupt_checkpoint_clear_error(tmp_path):
    _trainer(tiny_config(), tmp_path).run(stop_at=3)
    path = latest_checkpoint(tmp_path)
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: checksum mismatch"):
        load_pipeline(path, use_ema=False)
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: corrupt JSON"):
        load_pipeline(path)


def test_checkpoint_not_matching_config_clear_error(tmp_path):
    _trainer(tiny_config(), tmp_path).run(stop_at=3)
    path = latest_checkpoint(tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["model"]["head_dim"] = 4  # the weights on disk are for head_dim 8
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"ema\.safetensors: does not match its config"):
        load_pipeline(path)


@pytest.mark.parametrize("objective", ["eps", "flow", "x0"])
def test_sampling_is_deterministic_and_batch_independent(tmp_path, objective):
    t = _trainer(tiny_config(objective=objective), tmp_path)
    t.run(stop_at=3)
    pipe = load_pipeline(latest_checkpoint(tmp_path))
    prompts = ["red square is above blue square", "red square is below blue square", "blue square"]
    a = pipe.generate(prompts, [0, 1, 2], steps=3, output_size=32)
    b = pipe.generate(prompts, [0, 1, 2], steps=3, batch_size=2, output_size=32)
    c = pipe.generate(prompts[:1], [7], steps=3, output_size=None)
    assert all(x.shape == (32, 32, 3) and x.dtype == np.uint8 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert c[0].shape == (SIZE, SIZE, 3) and not np.array_equal(a[0][::2, ::2], c[0])


@pytest.mark.slow
def test_compiled_sampling_matches_eager_to_rounding(tmp_path):
    """torch.compile (inductor, about a minute to compile on 2 cores) changes the float order of
    operations, never the images beyond a level or two of uint8 rounding."""
    _trainer(tiny_config(objective="x0"), tmp_path).run(stop_at=3)
    pipe = load_pipeline(latest_checkpoint(tmp_path))
    prompts = ["red square is above blue square", "blue circle is left of red square"]
    eager = pipe.generate(prompts, [0, 1], steps=3, output_size=None)
    pipe.compile = True
    compiled = pipe.generate(prompts, [0, 1], steps=3, output_size=None)
    assert pipe.describe()["compile"] is True and pipe._compiled is not None
    worst = max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(eager, compiled))
    assert worst <= 2, f"compiled sampling differs from eager by {worst} uint8 levels"


def test_bf16_sampling_runs_in_bf16_and_restores_the_exact_float32_weights(tmp_path):
    _trainer(tiny_config(objective="x0"), tmp_path).run(stop_at=3)
    pipe = load_pipeline(latest_checkpoint(tmp_path))
    tensors = lambda: dict(list(pipe.model.named_parameters()) + list(pipe.model.named_buffers()))
    before = {k: v.detach().clone() for k, v in tensors().items()}
    seen: list[torch.dtype] = []
    pipe.model.register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
    prompts = ["red square is above blue square", "blue circle is left of red square"]
    full = pipe.generate(prompts, [0, 1], steps=3, output_size=None)
    pipe.bf16 = True
    half = pipe.generate(prompts, [0, 1], steps=3, output_size=None)
    assert seen == [torch.float32] * 3 + [torch.bfloat16] * 3 and pipe.describe()["bf16"] is True
    after = tensors()
    assert after.keys() == before.keys()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], v) for k, v in before.items())
    pipe.bf16 = False
    assert all(np.array_equal(a, b) for a, b in zip(full, pipe.generate(prompts, [0, 1], steps=3, output_size=None)))
    mean = np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(full, half)])
    assert 0 < mean < 2.0, f"bf16 images differ from float32 by {mean:.2f} uint8 levels on average"


def test_checkpoints_carry_the_sampler_shift_their_config_names(tmp_path):
    t = _trainer(tiny_config(objective="x0", sample_shift=3.0), tmp_path)
    t.run(stop_at=3)
    assert t.pipeline().shift == 3.0
    pipe = load_pipeline(latest_checkpoint(tmp_path))
    assert pipe.shift == 3.0 and pipe.describe()["shift"] == 3.0
    with pytest.raises(ValueError):
        tiny_config(sample_shift=0)


def test_latent_space_training_and_sampling(tmp_path):
    cfg = tiny_config(model={**tiny_config().model.model_dump(), "space": "latent", "patch_size": 1,
                             "latent_downsample": 2, "latent_channels": 2},
                      autoencoder={"channels": 2, "downsample": 2, "width": 8}, autoencoder_steps=5,
                      autoencoder_batch=4)
    t = _trainer(cfg, tmp_path)
    assert t.autoencoder is not None
    t.run(stop_at=3)
    pipe = load_pipeline(latest_checkpoint(tmp_path))
    assert pipe.autoencoder is not None
    img = pipe.generate(["red square"], [0], steps=2, output_size=None)[0]
    assert img.shape == (SIZE, SIZE, 3)


def test_autoencoder_learns_and_scales_latents():
    cfg = AutoencoderConfig(channels=4, downsample=2, width=16)
    ae, losses = train_autoencoder(cfg, lambda k: toy_source(k, 0, 8)[0], steps=60, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0]
    from relbench.dit.autoencoder import to_tensor

    z = ae.encode(to_tensor(toy_source(99, 0, 16)[0]))
    assert z.shape == (16, 4, SIZE // 2, SIZE // 2)
    assert 0.3 < float(z.std()) < 0.8  # SIGMA_DATA (0.5) on the fitting batch


def test_logit_normal_noise_levels_favour_high_noise():
    from relbench.dit.objectives import NoiseProcess

    gen = torch.Generator().manual_seed(0)
    uniform = NoiseProcess("flow").sample_times(20_000, gen)
    high = NoiseProcess("flow", time_mean=1.5, time_std=1.0).sample_times(20_000, gen)
    assert abs(float(uniform.mean()) - 0.5) < 0.01
    # sigmoid is monotone, so the median is sigmoid(time_mean) and P(s > 0.85) = P(z > logit(0.85)).
    assert abs(float(high.median()) - float(torch.sigmoid(torch.tensor(1.5)))) < 0.01
    p = float((high > 0.85).float().mean())
    expected = 1 - 0.5 * (1 + math.erf((math.log(0.85 / 0.15) - 1.5) / math.sqrt(2)))
    assert abs(p - expected) < 0.01
    with pytest.raises(ValueError, match="time_std"):
        NoiseProcess("flow", time_std=-1)
    # ε-prediction draws its integer timesteps from the same levels.
    x0 = torch.zeros(512, 3, 4, 4)
    _, t, _ = NoiseProcess("eps", time_mean=1.5, time_std=1.0).corrupt(x0, gen)
    assert t.min() >= 0 and t.max() <= 999 and float(t.float().median()) > 700


def test_colour_layout_diagnostic_reads_true_layouts_and_refuses_what_it_cannot_judge():
    from relbench.baselines import oracle_image
    from relbench.dit.train import colour_layout_correct
    from relbench.suites import get_suite, parse_prompt

    prompts = get_suite("core").prompts[:16]
    verdicts = [colour_layout_correct(oracle_image(p.spec, 0, 64), p.spec) for p in prompts]
    assert all(v is True for v in verdicts)
    inverse = {"above": "below", "below": "above", "left": "right", "right": "left"}
    p = next(p for p in prompts if p.spec.relation in inverse)
    wrong = type(p.spec)(p.spec.subject, inverse[p.spec.relation], p.spec.reference)
    assert colour_layout_correct(oracle_image(p.spec, 0, 64), wrong) is False
    blank = np.full((64, 64, 3), 128, np.uint8)
    assert colour_layout_correct(blank, p.spec) is None
    shapes_only = parse_prompt("square is above circle")  # no colour words: nothing to judge by
    assert colour_layout_correct(oracle_image(p.spec, 0, 64), shapes_only) is None


def test_x0_preconditioning_has_unit_variance_targets_and_exact_velocities():
    from relbench.dit.objectives import SIGMA_DATA, NoiseProcess, edm_coefficients, sampling_scheduler, to_velocity

    gen = torch.Generator().manual_seed(0)
    for s in (0.02, 0.3, 0.7, 0.98):
        x0 = torch.randn(4096, 8, generator=gen) * SIGMA_DATA
        noise = torch.randn(4096, 8, generator=gen)
        x_t = (1 - s) * x0 + s * noise
        c_skip, c_out = edm_coefficients(torch.tensor(s))
        target = (x0 - c_skip * x_t) / c_out
        assert abs(float(target.std()) - 1.0) < 0.03
        # a network that outputs its target exactly gives the exact flow velocity noise − x0
        assert torch.allclose(to_velocity("x0", target, x_t, s), noise - x0, atol=1e-4)
    # at high noise the network's output is the image itself, at low noise x_t is passed through
    c_skip, c_out = edm_coefficients(torch.tensor([0.999, 0.001]))
    assert float(c_skip[0]) < 0.01 and abs(float(c_out[0]) - SIGMA_DATA) < 0.01
    assert abs(float(c_skip[1]) - 1.0) < 0.01 and float(c_out[1]) < 0.01
    # training draws the same path and the target above
    x0 = torch.rand(64, 3, 4, 4) - 0.5
    x_t, t, target = NoiseProcess("x0").corrupt(x0, torch.Generator().manual_seed(1))
    s = (t / 1000).view(-1, 1, 1, 1)
    c_skip, c_out = edm_coefficients(s)
    assert torch.allclose(c_skip * x_t + c_out * target, x0, atol=1e-5)
    assert type(sampling_scheduler("x0", shift=2.0)).__name__ == "FlowMatchEulerDiscreteScheduler"
    assert torch.equal(to_velocity("flow", x0, x_t, 0.5), x0)
    with pytest.raises(ValueError, match="flow-path"):
        to_velocity("eps", x0, x_t, 0.5)


def test_evaluate_suite_splits_colour_layout_by_the_subjects_colour():
    """A model that puts red on the subject's side whatever the caption says: right for every
    red-subject prompt, wrong for every blue-subject one, which the overall score hides."""
    from relbench.baselines import oracle_image
    from relbench.dit.train import evaluate_suite
    from relbench.suites import get_suite

    specs = {p.prompt: p.spec for p in get_suite("core").prompts}

    class RedSubjectAlways:
        def generate(self, prompts, seeds, steps, guidance):
            images = [oracle_image(specs[p], s, 64) for p, s in zip(prompts, seeds)]
            # exchanging the R and B channels turns red pixels blue and blue red (grey stays)
            return [im[..., ::-1] if specs[p].subject.color == "blue" else im for im, p in zip(images, prompts)]

    result = evaluate_suite(RedSubjectAlways(), "core", n_prompts=32, seeds=[0])
    assert result["n"] == 32
    assert result["colour_layout_by_subject"]["red"] == 1.0
    assert result["colour_layout_by_subject"]["blue"] < 0.1
    assert 0.4 < result["colour_layout"] < 0.6


@pytest.mark.parametrize("keep_best", [True, False])
def test_pruning_keeps_the_best_evaluated_checkpoint(tmp_path, keep_best):
    tmp_path.mkdir(exist_ok=True)
    rows = [{"step": 2, "strict_accuracy": 0.9}, {"step": 3, "strict_accuracy": 0.9},
            {"step": 4, "strict_accuracy": 0.1}, {"step": 9, "strict_accuracy": 1.0}]  # 9: never reached
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = _trainer(tiny_config(checkpoint_every=1, keep_checkpoints=2, keep_best=keep_best), tmp_path)
    assert t.best_eval_step() is None  # nothing evaluated at or before step 0
    t.run()
    assert t.best_eval_step() == 3  # the later of the tied best, among the steps done
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == (["step_0000003"] if keep_best else []) + ["step_0000005", "step_0000006"]


def test_a_warm_restart_leaves_the_earlier_schedule_unchanged_then_decays_again():
    base = dict(lr=1e-3, warmup_steps=10, lr_decay_start=100, lr_decay_steps=50, lr_min_ratio=0.1)
    plain = tiny_config(**base)
    restarted = tiny_config(**base, lr_restarts=[{"step": 200, "peak_ratio": 0.5, "decay_start": 300,
                                                  "decay_steps": 100}])
    assert [restarted.learning_rate(k) for k in range(200)] == [plain.learning_rate(k) for k in range(200)]
    assert restarted.learning_rate(200) == restarted.learning_rate(300) == pytest.approx(5e-4)
    assert restarted.learning_rate(350) == pytest.approx(1e-3 * (0.1 + 0.4 * 0.5))
    assert restarted.learning_rate(400) == restarted.learning_rate(10**6) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="must come after lr_decay_start"):
        tiny_config(**base, lr_restarts=[{"step": 50, "peak_ratio": 0.5, "decay_start": 60, "decay_steps": 9}])
    with pytest.raises(ValueError, match="decay_start 250 comes before it"):
        tiny_config(**base, lr_restarts=[{"step": 300, "peak_ratio": 0.5, "decay_start": 250, "decay_steps": 9}])
    with pytest.raises(ValueError, match="steps must increase"):
        tiny_config(**base, lr_restarts=[{"step": 300, "peak_ratio": 0.5, "decay_start": 300, "decay_steps": 9},
                                         {"step": 200, "peak_ratio": 0.5, "decay_start": 200, "decay_steps": 9}])


def test_learning_rate_warms_up_then_decays_along_a_half_cosine(tmp_path):
    cfg = tiny_config(lr=1e-3, warmup_steps=10, lr_decay_start=100, lr_decay_steps=50, lr_min_ratio=0.1)
    assert cfg.learning_rate(0) == pytest.approx(1e-4) and cfg.learning_rate(9) == pytest.approx(1e-3)
    assert cfg.learning_rate(99) == cfg.learning_rate(100) == pytest.approx(1e-3)
    assert cfg.learning_rate(125) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert cfg.learning_rate(150) == cfg.learning_rate(10**6) == pytest.approx(1e-4)
    constant = tiny_config(lr=1e-3, warmup_steps=10)
    assert constant.learning_rate(10**6) == 1e-3
    fast = cfg.model_copy(update={"lr_decay_start": 1, "lr_decay_steps": 1})
    t = _trainer(fast, tmp_path)
    t.run(stop_at=3)  # the optimizer ran step 2 at the decayed, still warming-up rate
    assert t.opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.3 * 0.1)
