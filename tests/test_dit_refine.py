"""Decoder refinement (relbench.dit.refine) on a tiny latent DiT and a synthetic data stream."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from relbench.dit import TrainConfig, Trainer, load_pipeline
from relbench.dit.autoencoder import to_tensor
from relbench.dit.checkpoint import read_meta, sampling_hash
from relbench.dit.refine import RefineConfig, _predicted_latents, refine_checkpoint, refine_decoder
from relbench.dit.train import latest_checkpoint

SIZE = 32


def squares(step: int, batch_size: int = 8):
    """Two flat 8 px squares per 32 px image with a caption saying which is above (test_dit_train's
    stand-in for the renderer, at the renderer's smallest size)."""
    from test_dit_train import toy_source

    return toy_source(step, 0, batch_size, size=SIZE, side=8)


@pytest.fixture(scope="module")
def latent_checkpoint(tmp_path_factory):
    """A tiny latent-space x0 DiT (8×8 latents of 32 px images) after a few steps on `squares`."""
    cfg = TrainConfig.model_validate({
        "model": {"preset": "nano", "head_dim": 8, "encoder": "rtep", "encoder_dim": 16, "max_length": 12,
                  "image_size": SIZE, "space": "latent", "patch_size": 1, "latent_downsample": 4,
                  "latent_channels": 4},
        "objective": "x0", "steps": 4, "batch_size": 4, "lr": 1e-3, "warmup_steps": 1, "eval_every": 0,
        "log_every": 1, "checkpoint_every": 4, "autoencoder": {"channels": 4, "downsample": 4, "width": 16},
        "autoencoder_steps": 60, "autoencoder_batch": 8,
    })
    out = tmp_path_factory.mktemp("latent-dit")
    Trainer(cfg, out, source=lambda step, rank, b: squares(1000 * rank + step, b), progress=False).run()
    return latest_checkpoint(out)


def _decoder_error(pipe, seed: int = 7) -> float:
    """The decoder's error on its own inputs (guided predictions) for batch 0, fresh noise."""
    images, captions = squares(0, 16)
    x = to_tensor(images)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z_hat, _ = _predicted_latents(pipe, x, captions, RefineConfig(), gen, pipe.encoder.null())
        return float(torch.nn.functional.mse_loss(pipe.autoencoder.decode(z_hat), x))


@pytest.mark.parametrize("steps, ratio", [
    (20, 0.9),  # the default run: the decoder alone moves and its error falls (to 0.78 here)
    pytest.param(100, 0.7, marks=pytest.mark.slow),  # the full check: 0.62 here
])
def test_refinement_moves_only_the_decoder_and_lowers_its_error(latent_checkpoint, steps, ratio):
    pipe = load_pipeline(latent_checkpoint)
    dit = {k: v.clone() for k, v in pipe.model.state_dict().items()}
    enc = {k: v.clone() for k, v in pipe.autoencoder.encoder.state_dict().items()}
    dec = {k: v.clone() for k, v in pipe.autoencoder.decoder.state_dict().items()}
    flags = [p.requires_grad for p in pipe.autoencoder.decoder.parameters()]
    before = _decoder_error(pipe)
    # One batch of scenes throughout (fresh noise levels and noise each step): the decoder must
    # learn to map the DiT's predictions from it back to those images.
    losses = refine_decoder(pipe, lambda k: squares(0, 16), RefineConfig(steps=steps, batch_size=16, lr=3e-3))
    after = _decoder_error(pipe)
    assert len(losses) == steps and after < ratio * before
    assert all(torch.equal(v, pipe.model.state_dict()[k]) for k, v in dit.items())
    assert all(torch.equal(v, pipe.autoencoder.encoder.state_dict()[k]) for k, v in enc.items())
    assert any(not torch.equal(v, pipe.autoencoder.decoder.state_dict()[k]) for k, v in dec.items())
    assert [p.requires_grad for p in pipe.autoencoder.decoder.parameters()] == flags  # as it was
    assert not pipe.autoencoder.decoder.training


def test_refined_checkpoint_records_the_refinement_and_changes_the_hash(latent_checkpoint, tmp_path):
    out = tmp_path / "refined"
    section = refine_checkpoint(latent_checkpoint, out, RefineConfig(steps=3, batch_size=2), eval_prompts=2)
    meta, src = read_meta(out), read_meta(latent_checkpoint)
    assert meta["decoder_refine"]["config"]["steps"] == 3 == section["config"]["steps"]
    assert meta["decoder_refine"]["source_autoencoder_sha256"] == src["files"]["autoencoder.safetensors"]
    assert set(section["eval"]) >= {"strict_before", "strict_after"}
    # The transformer is the same file; the images' identity (decoder included) is not.
    assert meta["files"]["ema.safetensors"] == src["files"]["ema.safetensors"]
    assert meta["files"]["autoencoder.safetensors"] != src["files"]["autoencoder.safetensors"]
    old, new = load_pipeline(latent_checkpoint), load_pipeline(out)
    assert new.weights_hash == sampling_hash(meta["files"]) != old.weights_hash
    assert new.checkpoint_hash != old.checkpoint_hash
    a = old.generate(["red square is above blue square"], [0], steps=2, output_size=None)[0]
    b = new.generate(["red square is above blue square"], [0], steps=2, output_size=None)[0]
    assert a.shape == b.shape and not np.array_equal(a, b)
    # A refined checkpoint still resumes training (state.json and the optimizer came along).
    assert json.loads((out / "state.json").read_text())["step"] == 4


def test_training_on_from_a_refined_checkpoint_keeps_its_decoder_and_its_record(latent_checkpoint, tmp_path):
    """A run resumed from a refined checkpoint carries the refined decoder and the record of its
    refinement into its next checkpoints; refining again keeps the first pass as `previous`."""
    import shutil

    from relbench.dit.checkpoint import read_checkpoint

    run = tmp_path / "run"
    first = refine_checkpoint(latent_checkpoint, run / "checkpoints" / latent_checkpoint.name,
                              RefineConfig(steps=2, batch_size=2))
    assert first["step"] == 4
    cfg = TrainConfig.model_validate(read_meta(latent_checkpoint)["train"] | {"steps": 6})
    shutil.copy(latent_checkpoint.parent.parent / "log.jsonl", run / "log.jsonl")
    trainer = Trainer(cfg, run, source=lambda step, rank, b: squares(step, b), progress=False)
    assert trainer.step == 4
    trainer.run()
    later = latest_checkpoint(run)
    assert later.name == "step_0000006"
    refined_ae = read_checkpoint(run / "checkpoints" / latent_checkpoint.name).weights["autoencoder"]
    assert all(torch.equal(v, read_checkpoint(later).weights["autoencoder"][k]) for k, v in refined_ae.items())
    assert read_meta(later)["decoder_refine"] == read_meta(run / "checkpoints" / latent_checkpoint.name)["decoder_refine"]
    second = refine_checkpoint(later, tmp_path / "twice", RefineConfig(steps=2, batch_size=2))
    assert second["step"] == 6 and second["previous"]["step"] == 4
    assert second["source_autoencoder_sha256"] == read_meta(later)["files"]["autoencoder.safetensors"]


def test_refinement_refuses_what_it_cannot_refine(latent_checkpoint, tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="pixel-space"):
        refine_checkpoint(tiny_checkpoint, tmp_path / "x", RefineConfig(steps=1))
    pipe = load_pipeline(latent_checkpoint)
    pipe.objective = "eps"
    with pytest.raises(ValueError, match="flow-path objective"):
        refine_decoder(pipe, squares, RefineConfig(steps=1))
    with pytest.raises(ValueError, match="sigma_min 0.5 is above sigma_max 0.2"):
        RefineConfig(sigma_min=0.5, sigma_max=0.2)


def test_refine_decoder_cli(latent_checkpoint, tmp_path):
    from typer.testing import CliRunner

    from relbench.cli import app

    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(app, ["refine-decoder", str(latent_checkpoint), "--out", str(out),
                              "--set", "steps=2", "--set", "batch_size=2"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["config"]["steps"] == 2
    assert read_meta(out)["decoder_refine"]["config"]["batch_size"] == 2
    bad = runner.invoke(app, ["refine-decoder", str(latent_checkpoint), "--out", str(tmp_path / "b"),
                              "--set", "stepz=2"])
    assert bad.exit_code == 2 and "did you mean 'steps'" in bad.output


@pytest.mark.parametrize("objective", ["x0", "flow"])
def test_predictions_invert_the_objective(latent_checkpoint, objective):
    """With a network that outputs the exact target for its objective, the guided prediction the
    decoder is fitted to is the clean latent itself (for any guidance scale)."""
    from relbench.dit.objectives import edm_coefficients

    pipe = load_pipeline(latent_checkpoint)
    pipe.objective = objective
    images, captions = squares(3, 4)
    x = to_tensor(images)
    with torch.no_grad():
        z0 = pipe.autoencoder.encode(x)
    cfg = RefineConfig(guidance=3.0)
    # The draws _predicted_latents makes, replayed: σ first, then the noise.
    gen = torch.Generator().manual_seed(5)
    sigma = cfg.sigma_min + (cfg.sigma_max - cfg.sigma_min) * torch.rand(4, generator=gen)
    noise = torch.randn(z0.shape, generator=gen)
    sv = sigma.view(4, 1, 1, 1)
    z_s = (1 - sv) * z0 + sv * noise
    if objective == "flow":
        target = noise - z0
    else:
        c_skip, c_out = edm_coefficients(sv)
        target = (z0 - c_skip * z_s) / c_out
    pipe.model = lambda xx, t, states, mask: torch.cat([target, target])
    z_hat, clean = _predicted_latents(pipe, x, captions, cfg, torch.Generator().manual_seed(5), pipe.encoder.null())
    assert torch.allclose(clean, z0) and torch.allclose(z_hat, z0, atol=1e-5)
