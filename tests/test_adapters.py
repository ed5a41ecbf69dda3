"""Model adapters: `folder:DIR`, `diffusers:PATH` (a tiny random PixArt), bundled / `dit:` DiTs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from relbench.models import GenerationRequest, list_models, load_model
from relbench.runner import SAMPLES, EvalConfig, read_samples, run_eval

ROOT = Path(__file__).resolve().parents[1]

PROMPTS = [
    "red square is above blue circle",
    "blue triangle is to the left of red square",
    "red circle is below and to the right of blue triangle",
]


def _prompts_file(tmp_path: Path, prompts: list[str] = PROMPTS) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    return path


def _core_prompts(tmp_path: Path, n: int) -> Path:
    from relbench.suites import get_suite

    prompts = [p.prompt for p in get_suite("core").prompts]
    return _prompts_file(tmp_path, prompts[:: len(prompts) // n][:n])


def _write_png(path: Path, image: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


# ---- folder:DIR ---------------------------------------------------------------------------


def _folder(tmp_path: Path) -> Path:
    """Oracle images for PROMPTS: prompt 0 with explicit seeds 0 and 1; prompt 1 without seeds
    (two rows → seeds 0, 1); prompt 2 has seed 0 corrupt and seed 1 missing on disk."""
    from relbench.baselines import oracle_image
    from relbench.suites import parse_prompt

    root = tmp_path / "imgs"
    root.mkdir()
    rows = []
    for i, prompt in enumerate(PROMPTS):
        for seed in (0, 1):
            file = f"p{i}_s{seed}.png"
            if i < 2 or seed == 0:
                _write_png(root / file, oracle_image(parse_prompt(prompt), seed, 128))
            rows.append({"file": file, "prompt": prompt} | ({} if i == 1 else {"seed": seed}))
    (root / "p2_s0.png").write_bytes(b"not a png")
    rows.append({"file": "x.png", "prompt": PROMPTS[0], "seed": 1})  # duplicate: reported, skipped
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_folder_model_scores_present_images_and_explains_missing_ones(tmp_path):
    root = _folder(tmp_path)
    prompts = _prompts_file(tmp_path)
    summary = run_eval(EvalConfig(f"folder:{root}", f"file:{prompts}", seeds=[0, 1, 2]), tmp_path / "run",
                       progress=False)
    rows = {(r["prompt"], r["seed"]): r for r in read_samples(tmp_path / "run" / SAMPLES)}
    for prompt in PROMPTS[:2]:
        assert [rows[(prompt, s)]["correct"] for s in (0, 1)] == [True, True]
    assert rows[(PROMPTS[2], 0)]["correct"] is None
    assert "metadata.jsonl line 5" in rows[(PROMPTS[2], 0)]["error"]
    assert "corrupt" in rows[(PROMPTS[2], 0)]["error"]
    assert "p2_s1.png: no such file" in rows[(PROMPTS[2], 1)]["error"]
    seed2 = rows[(PROMPTS[1], 2)]["error"]
    assert f"no image for prompt {PROMPTS[1]!r} seed 2 in {root / 'metadata.jsonl'}" in seed2
    assert "rows without a seed answer seeds 0..1" in seed2
    assert summary["metrics"]["n_scored"] == 4 and summary["metrics"]["n_unscorable"] == 5
    model = summary["run"]["model"]
    assert len(model["checkpoint_hash"]) == 64
    assert model["skipped_metadata_lines"] == [
        f"metadata.jsonl line 7: prompt {PROMPTS[0]!r} seed 1 already given on line 2"
    ]


def test_folder_model_hash_pins_the_images(tmp_path):
    root = _folder(tmp_path)
    before = load_model(f"folder:{root}").describe()["checkpoint_hash"]
    _write_png(root / "p0_s0.png", np.zeros((8, 8, 3), np.uint8))
    assert load_model(f"folder:{root}").describe()["checkpoint_hash"] != before
    with pytest.raises(FileNotFoundError, match="metadata.jsonl not found"):
        load_model(f"folder:{tmp_path / 'nowhere'}")


# ---- diffusers:PATH -----------------------------------------------------------------------


def _tiny_pixart(path: Path) -> Path:
    """A random PixArt-α pipeline (T5 encoder, PixArt transformer, 2-level VAE) → 32 px images."""
    from diffusers import (
        AutoencoderKL,
        DPMSolverMultistepScheduler,
        PixArtAlphaPipeline,
        PixArtTransformer2DModel,
    )
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    words = "<pad> </s> <unk> red blue circle square triangle is above below the to left right of and"
    vocab = {w: i for i, w in enumerate(words.split())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>")
    torch.manual_seed(0)
    encoder = T5EncoderModel(T5Config(vocab_size=len(vocab), d_model=16, d_kv=4, d_ff=32, num_layers=1,
                                      num_heads=4))
    transformer = PixArtTransformer2DModel(
        num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=1,
        cross_attention_dim=16, caption_channels=16, sample_size=16, patch_size=2,
        norm_type="ada_norm_single", num_embeds_ada_norm=1000,
    )
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 8), layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=32,
    )
    pipe = PixArtAlphaPipeline(tokenizer=fast, text_encoder=encoder, vae=vae, transformer=transformer,
                               scheduler=DPMSolverMultistepScheduler())
    pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pixart_dir(tmp_path_factory) -> Path:
    return _tiny_pixart(tmp_path_factory.mktemp("pixart"))


def test_diffusers_pixart_eval_is_reproducible(pixart_dir, tmp_path):
    prompts = _core_prompts(tmp_path, 3)
    runs = []
    for name in ("a", "b"):
        cfg = EvalConfig(f"diffusers:{pixart_dir}", f"file:{prompts}", seeds=[0, 1], save_images=True,
                         model_args={"steps": 3})
        summary = run_eval(cfg, tmp_path / name, progress=False)
        runs.append((summary, read_samples(tmp_path / name / SAMPLES)))
    (summary, rows), (_, rows_b) = runs
    assert len(rows) == 6 and all(r.get("error") is None and r["correct"] is not None for r in rows)
    images = [cv2.imread(str(tmp_path / "a" / r["file"])) for r in rows]
    assert all(img.shape == (32, 32, 3) for img in images)
    again = [cv2.imread(str(tmp_path / "b" / r["file"])) for r in rows_b]
    assert all(np.array_equal(x, y) for x, y in zip(images, again))
    assert not np.array_equal(images[0], images[1])  # seeds 0 and 1 of one prompt differ
    run = summary["run"]
    assert run["sampling"]["steps"] == 3 and run["sampling"]["guidance"] == 4.5
    assert run["sampling"]["scheduler"] == "DPMSolverMultistepScheduler"
    from relbench.runlog import file_hash

    weights = pixart_dir / "transformer" / "diffusion_pytorch_model.safetensors"
    assert run["model"]["checkpoint_hash"] == file_hash(weights)
    assert run["model"]["pipeline"] == "PixArtAlphaPipeline" and run["model"]["diffusers_version"]


def test_diffusers_batch_does_not_change_images(pixart_dir):
    model = load_model(f"diffusers:{pixart_dir}", steps=2)
    reqs = [GenerationRequest(PROMPTS[0], 5), GenerationRequest(PROMPTS[1], 6)]
    pair = model.generate(reqs)
    alone = model.generate(reqs[1:])
    assert np.array_equal(pair[1], alone[0]) and pair[0].dtype == np.uint8


class _FakePipe:
    """Stands in for a diffusers pipeline: a NaN image, then a single-channel one, then 16 px."""

    def __init__(self, outputs):
        self.outputs = list(outputs)

    def __call__(self, prompt, generator, num_inference_steps, guidance_scale, output_type, **kw):
        from types import SimpleNamespace

        return SimpleNamespace(images=self.outputs.pop(0))


def test_diffusers_bad_outputs_are_unscorable(tmp_path):
    from relbench.models.diffusers_adapter import DiffusersModel

    nan = np.full((1, 32, 32, 3), np.nan, np.float32)
    gray = np.zeros((1, 32, 32, 1), np.float32)
    small = np.zeros((1, 16, 16, 3), np.float32)
    model = DiffusersModel("fake", _FakePipe([nan, gray, small]), steps=2, guidance=4.5, height=32, width=32)
    cfg = EvalConfig("diffusers:fake", f"file:{_prompts_file(tmp_path)}", seeds=[0], batch_size=1)
    summary = run_eval(cfg, tmp_path / "r", progress=False, model=model)
    errors = [r["error"] for r in read_samples(tmp_path / "r" / SAMPLES)]
    assert "NaN" in errors[0] and f"prompt {PROMPTS[0]!r} seed 0" in errors[0]
    assert "shape (32, 32, 1)" in errors[1]
    assert "16×16, requested 32×32" in errors[2]
    assert summary["metrics"]["n_unscorable"] == 3


def test_diffusers_missing_path_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot load a diffusers pipeline from directory"):
        load_model(f"diffusers:{tmp_path}")


# ---- bundled DiTs and dit:DIR -------------------------------------------------------------

SIZE = 16


def _toy_source(step: int, rank: int, batch_size: int):
    rng = np.random.default_rng([step, rank])
    images = np.full((batch_size, SIZE, SIZE, 3), 128, np.uint8)
    for b in range(batch_size):
        (x1, y1), (x2, y2) = rng.integers(0, SIZE - 4, size=(2, 2))
        images[b, y1 : y1 + 4, x1 : x1 + 4] = (255, 0, 0)
        images[b, y2 : y2 + 4, x2 : x2 + 4] = (0, 0, 255)
    return images, ["red square is above blue square"] * batch_size


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny DiT trained for 2 steps (checkpoint each step), as a training output directory."""
    from relbench.dit import TrainConfig, Trainer

    out = tmp_path_factory.mktemp("train")
    cfg = TrainConfig.model_validate({
        "model": {"preset": "nano", "head_dim": 8, "encoder": "rtep", "encoder_dim": 16,
                  "max_length": 12, "image_size": SIZE, "patch_size": 2},
        "steps": 2, "batch_size": 2, "eval_every": 0, "log_every": 1, "checkpoint_every": 1,
    })
    trainer = Trainer(cfg, out, source=_toy_source, progress=False)
    trainer.run()
    return out, trainer


@pytest.fixture
def bundled(trained, tmp_path, monkeypatch):
    """`trained` exported as the bundled model `rtep-micro` under a temporary bundled root."""
    from relbench.dit.bundle import export_bundled
    from relbench.dit.train import latest_checkpoint
    from relbench.models import dit_adapter

    out, _ = trained
    root = tmp_path / "bundled"
    export_bundled(latest_checkpoint(out), root / "rtep-micro", "# rtep-micro\n\nA test model.",
                   out / "log.jsonl")
    monkeypatch.setattr(dit_adapter, "BUNDLED_ROOT", root)
    return root / "rtep-micro"


def test_export_keeps_only_ema_weights_and_verifies(bundled, trained):
    from relbench.dit import CheckpointError, load_pipeline
    from relbench.dit.bundle import export_bundled, verify_bundle

    _, trainer = trained
    assert sorted(p.name for p in bundled.iterdir()) == [
        "README.md", "config.json", "ema.safetensors", "train_log.jsonl"
    ]
    meta = json.loads((bundled / "config.json").read_text())
    assert meta["bundle"]["step"] == 2 and set(meta["files"]) == {"ema.safetensors"}
    assert [json.loads(x)["step"] for x in (bundled / "train_log.jsonl").read_text().splitlines()] == [1, 2]
    card = (bundled / "README.md").read_text()
    assert card.startswith("# rtep-micro") and "| training step | 2 |" in card
    state = load_pipeline(bundled).model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in trainer.ema.shadow.items())
    assert verify_bundle(bundled)["step"] == 2
    again = export_bundled(bundled, bundled.parent / "copy", "# copy")  # a bundle re-exports as is
    assert verify_bundle(again)["step"] == 2 and not (again / "train_log.jsonl").exists()
    assert (again / "ema.safetensors").read_bytes() == (bundled / "ema.safetensors").read_bytes()

    (bundled / "README.md").write_text("edited")
    with pytest.raises(CheckpointError, match=r"README\.md: checksum mismatch"):
        verify_bundle(bundled)
    weights = bundled / "ema.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(CheckpointError, match=r"ema\.safetensors: checksum mismatch"):
        load_model("rtep-micro")


def test_bundled_model_is_listed_loaded_and_scored(bundled, trained):
    from relbench.dit.bundle import list_bundled
    from relbench.scoring import load_detector, score_image
    from relbench.suites import parse_prompt

    assert list_bundled() == ["rtep-micro"] and "rtep-micro" in list_models()
    with pytest.raises(ValueError, match="did you mean 'rtep-micro'"):
        load_model("rtep-micr")
    model = load_model("rtep-micro", steps=2, guidance=3.0)
    info = model.describe()
    assert info["weights_hash"] == json.loads((bundled / "config.json").read_text())["files"]["ema.safetensors"]
    assert info["path"] == "bundled/rtep-micro" and info["args"]["steps"] == 2
    assert model.sampling == {"steps": 2, "guidance": 3.0, "scheduler": "DPMSolverMultistepScheduler",
                              "shift": 1.0, "bf16": False, "compile": False, "output_size": 128}
    [image] = model.generate([GenerationRequest(PROMPTS[0], 0)])
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    row = score_image(image, parse_prompt(PROMPTS[0]), load_detector("default")).to_dict()
    assert row["correct"] in (True, False) and row["reason"]
    # dit:DIR reads the same weights from the exported dir, a checkpoint, or the training output.
    out, _ = trained
    for path in (bundled, out / "checkpoints" / "step_0000002", out):
        other = load_model(f"dit:{path}", steps=2, guidance=3.0)
        assert np.array_equal(other.generate([GenerationRequest(PROMPTS[0], 0)])[0], image)


def test_bundle_script_writes_a_card_from_the_files_and_quotes_only_its_own_eval(bundled, trained, tmp_path):
    import importlib.util

    from relbench.dit.bundle import verify_bundle
    from relbench.runner import EvalConfig, run_eval

    spec = importlib.util.spec_from_file_location("bundle_script", ROOT / "scripts" / "bundle.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out, _ = trained
    ckpt = out / "checkpoints" / "step_0000002"
    args = ["--checkpoint", str(ckpt), "--log", str(out / "log.jsonl"), "--name", "rtep-micro",
            "--root", str(bundled.parent)]
    script.main(args)
    card = (bundled / "README.md").read_text()
    assert "| objective | eps |" in card and "2 optimizer steps" in card and "Not evaluated yet." in card
    verify_bundle(bundled)
    prompts = _prompts_file(tmp_path)
    run = tmp_path / "run"
    run_eval(EvalConfig("rtep-micro", f"file:{prompts}", seeds=[0], model_args={"steps": 2}), run, progress=False)
    script.main(args + ["--eval", str(run), "--note", "A test."])
    card = (bundled / "README.md").read_text()
    overall = json.loads((run / "summary.json").read_text())["metrics"]["overall"]
    assert f"| overall (strict relation ∧ shapes ∧ colours) | {overall:.3f}" in card and "A test." in card
    other = tmp_path / "chance"
    run_eval(EvalConfig("chance", f"file:{prompts}", seeds=[0]), other, progress=False)
    with pytest.raises(SystemExit, match="evaluated weights None"):
        script.main(args + ["--eval", str(other)])
    assert "A test." in (bundled / "README.md").read_text()  # the refused card was not written


def test_eval_cli_sampling_options_and_model_names(bundled, tmp_path):
    from relbench.cli import app

    prompts = _prompts_file(tmp_path)
    args = ["eval", "--suite", f"file:{prompts}", "--n-images", "1", "--quiet", "--json"]
    ok = CliRunner().invoke(app, args + ["--model", "rtep-micro", "--steps", "2", "--guidance", "2.5",
                                         "--bf16", "--out", str(tmp_path / "run")])
    assert ok.exit_code == 0, ok.output
    summary = json.loads(ok.stdout)
    sampling = summary["run"]["sampling"]
    assert (sampling["steps"], sampling["guidance"], sampling["bf16"]) == (2, 2.5, True)
    assert summary["metrics"]["n_scored"] == 3
    typo = CliRunner().invoke(app, args + ["--model", "rtep-micr", "--out", str(tmp_path / "x")])
    assert typo.exit_code == 2 and "did you mean 'rtep-micro'" in typo.output
    oracle = CliRunner().invoke(app, args + ["--model", "oracle", "--steps", "3", "--out", str(tmp_path / "y")])
    assert oracle.exit_code == 2 and "model 'oracle' does not take 'steps'" in oracle.output


def test_no_bundled_models_is_an_empty_list(tmp_path, monkeypatch):
    from relbench.models import dit_adapter

    monkeypatch.setattr(dit_adapter, "BUNDLED_ROOT", tmp_path / "none")
    assert dit_adapter.list_bundled() == [] and not any(m.startswith("rtep") for m in list_models())
    with pytest.raises(ValueError, match="no bundled DiTs are installed"):
        load_model("rtep-micro")


def test_dit_models_refuse_unknown_options_naming_the_ones_they_take(tmp_path, monkeypatch):
    from relbench.models import dit_adapter

    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "config.json").write_text("{}")  # refused before anything is read
    monkeypatch.setattr(dit_adapter, "BUNDLED_ROOT", tmp_path)
    takes = r"\(it takes: steps, guidance, batch_size, output_size, shift, bf16, compile\)"
    for name in ("tiny", "dit:nowhere"):
        with pytest.raises(ValueError, match=rf"model '{name}' does not take 'step' {takes}"):
            load_model(name, step=2)
    with pytest.raises(ValueError, match=r"'diffusers:x' does not take 'shift' \(it takes: st"):
        load_model("diffusers:x", shift=3.0)


def test_bundle_card_recipe_names_the_order_bias_and_the_autoencoder():
    import importlib.util

    from relbench.dit import TrainConfig

    spec = importlib.util.spec_from_file_location("bundle_script", ROOT / "scripts" / "bundle.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for name, latent in (("rtep-micro-pixel", False), ("rtep-micro", True)):
        train = TrainConfig.load(ROOT / "configs" / "train" / f"{name}.json").model_dump()
        recipe = dict(script._recipe(train, {"shift": 3.0}))
        assert recipe["subject colour"].startswith("red is the subject with p = 0.8 for 3000 steps")
        assert ("autoencoder" in recipe) == latent
        assert recipe["input"].endswith("(8×8 tokens)")  # the paper's grid, in either space
        assert recipe["sampler"].startswith("FlowMatchEulerDiscreteScheduler, shift 3.0")
    paper = dict(script._recipe(TrainConfig().model_dump(), {}))
    assert paper["subject colour"].startswith("the paper's") and paper["layouts"].startswith("the paper's")
    assert paper["learning-rate schedule"] == "constant after the warm-up"
    bundled = TrainConfig.load(ROOT / "configs" / "train" / "rtep-micro.json").model_dump()
    assert dict(script._recipe(bundled, {}))["learning-rate schedule"] == (
        "half cosine to 0.1 × lr from step 3000 over 1500 steps; warm restart at step 4500 to 0.5 × lr, "
        "half cosine to 0.1 × lr from step 9000 over 3500 steps; warm restart at step 12500 to 0.3 × lr, "
        "half cosine to 0.1 × lr from step 12500 over 3000 steps; warm restart at step 15500 to 0.2 × lr, "
        "half cosine to 0.1 × lr from step 15500 over 3000 steps")
    # the card names the config file that holds the stored recipe, whatever the bundle's name
    assert script._config_file(bundled, "renamed") == Path("configs/train/rtep-micro.json")
    assert script._config_file({**bundled, "lr": 0.5}, "rtep-micro") is None
    older = {k: v for k, v in bundled.items() if k != "keep_best"}  # stored before the field existed
    assert script._config_file(older, "rtep-micro") == Path("configs/train/rtep-micro.json")
    # a refined decoder is a row of its own, with the refinement's own numbers
    refine = {"config": {"steps": 600, "batch_size": 32, "lr": 5e-4, "sigma_min": 0.1, "sigma_max": 0.45,
                         "guidance": 4.5, "seed": 0}, "wall_s": 480.0, "threads": 1,
              "eval": {"prompts": 96, "strict_before": 0.625, "strict_after": 0.708}}
    row = dict(script._recipe(bundled, {}, refine))["decoder refinement"]
    assert "σ ∈ [0.1, 0.45]" in row and "600 steps at batch 32" in row and "8.0 min on 1 thread(s)" in row
    assert row.endswith("0.625 before, 0.708 after")
    assert "decoder refinement" not in dict(script._recipe(bundled, {}))
    # a second pass names its step and keeps the first one's numbers
    twice = {**refine, "step": 15500, "previous": {**refine, "step": 12500}}
    row = dict(script._recipe(bundled, {}, twice))["decoder refinement"]
    assert row.startswith("at step 15500, `relbench refine-decoder`") and "It refined a decoder refined before: at step 12500" in row
    # a layout phase is described after the layouts it replaces
    layouts = dict(script._recipe(bundled, {}))["layouts"]
    unphased = dict(script._recipe({**bundled, "layout_phases": []}, {}))["layouts"]
    assert layouts.startswith(unphased) and "λ_min 0.0 → 1 over 20000 steps" in unphased
    assert layouts.endswith("from step 12500 (`layout_phases`): curriculum (`relbench.dit.layouts`): relations "
                            "balanced = True, λ_min 0.3, spread power 3.0, canonical distance 0.3, cardinal "
                            "layouts' offset on the unnamed axis × 0.0")
