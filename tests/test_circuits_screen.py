"""Weight-space screening on tiny random PixArt transformers: ramps, a hand-built relation head,
relation-token selection per encoder, bad input, and agreement with a synopsis."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from relbench.circuits.screen import (
    ScreenError,
    agreement,
    position_table,
    ramp,
    ramp_cosine,
    read_screen,
    relation_states,
    role_positions,
    screen_heads,
    screen_model,
    write_screen,
)
from relbench.dit import load_encoder
from relbench.scene import INVERSE, RELATIONS


def _transformer(seed: int = 0, layers: int = 2, caption_dim: int = 16):
    """A random PixArt transformer: 2 heads × 8 dims, 16 px input, patch 2 → an 8×8 grid."""
    from diffusers import PixArtTransformer2DModel

    torch.manual_seed(seed)
    return PixArtTransformer2DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=3,
        out_channels=3,
        num_layers=layers,
        cross_attention_dim=16,
        caption_channels=caption_dim,
        sample_size=16,
        patch_size=2,
        norm_type="ada_norm_single",
        num_embeds_ada_norm=1000,
        interpolation_scale=1,
        use_additional_conditions=False,
    ).eval()


@pytest.fixture(scope="module")
def rtep():
    return load_encoder("rtep", dim=16, max_length=12)


def test_ramp_cosine_of_ramps_and_flat_maps():
    for rel in RELATIONS:
        r = ramp(rel, 8)
        assert abs(r.mean()) < 1e-12
        assert ramp_cosine(r + 3.0, rel) == pytest.approx(1.0)  # mean-centred first
        assert ramp_cosine(r, INVERSE[rel]) == pytest.approx(-1.0)
    assert ramp("above", 8)[0, 0] > ramp("above", 8)[7, 0]  # y down: "above" is high at the top
    assert ramp_cosine(ramp("above", 8), "left") == pytest.approx(0.0)
    assert ramp_cosine(np.full((8, 8), 2.0), "above") == 0.0
    with pytest.raises(ValueError, match="square"):
        ramp_cosine(np.zeros((8, 4)), "above")
    with pytest.raises(ValueError, match="did you mean 'above'"):
        ramp("abvoe", 8)


def test_hand_built_ramp_head_scores_one_and_random_heads_score_low(rtep, monkeypatch):
    tr = _transformer()
    states = relation_states(rtep)
    pos, grid = position_table(tr)
    assert grid == 8 and pos.shape == (64, 16)
    # Layer 0, head 0: Q_n = (ramp_above(n), 0, ...), K_above = (1, 0, ...) → Q·K = the ramp.
    fit = np.linalg.lstsq(pos.double().numpy(), ramp("above", grid).ravel(), rcond=None)[0]  # (16,)
    w = torch.tensor(fit, dtype=torch.float32)
    attn = tr.transformer_blocks[0].attn2
    with torch.no_grad():
        k_dir = tr.caption_projection(states["above"]).mean(0)  # (16,)
        attn.to_q.weight[:8] = 0
        attn.to_q.weight[0] = w
        attn.to_k.weight[:8] = 0
        attn.to_k.weight[0] = k_dir / k_dir.square().sum()

    def no_forward(*a, **k):
        raise AssertionError("screening must not run the transformer")

    monkeypatch.setattr(tr, "forward", no_forward)
    doc = screen_heads(tr, states)
    assert doc["layers"] == 2 and doc["heads_per_layer"] == 2 and doc["grid"] == 8
    assert len(doc["heads"]) == 2 * 2 * len(RELATIONS)
    cos = {(h["layer"], h["head"], h["relation"]): h["cosine"] for h in doc["heads"]}
    assert cos[(0, 0, "above")] > 0.999
    assert abs(cos[(0, 0, "below")]) > 0.999  # K_below is a multiple of K_above in this head
    random = [abs(c) for (layer, head, _), c in cos.items() if (layer, head) != (0, 0)]
    assert np.mean(random) < 0.4
    assert (doc["top"][0]["layer"], doc["top"][0]["head"]) == (0, 0)
    assert [t["score"] for t in doc["top"]] == sorted(
        (t["score"] for t in doc["top"]), reverse=True
    )


def test_signed_and_specific_scores_separate_a_shared_map_from_a_relation_map():
    """Layer 0 head 0 reads Q_n = ramp_above(n) against the key's first coordinate; with the
    caption projection removed that coordinate is the relation state's first entry."""
    tr = _transformer(layers=1)
    tr.caption_projection = None  # keys are W_k · state
    pos, grid = position_table(tr)
    fit = np.linalg.lstsq(pos.double().numpy(), ramp("above", grid).ravel(), rcond=None)[0]
    attn = tr.transformer_blocks[0].attn2
    with torch.no_grad():
        attn.to_q.weight[:8] = 0
        attn.to_q.weight[0] = torch.tensor(fit, dtype=torch.float32)
        attn.to_k.weight[:8] = 0
        attn.to_k.weight[0, 0] = 1.0
    e = torch.zeros(1, 16)
    e[0, 0] = 1.0

    def head(states):
        return next(t for t in screen_heads(tr, states)["top"] if (t["layer"], t["head"]) == (0, 0))

    shared = head({"above": e, "below": e})  # both words light up the top rows
    assert shared["score"] > 0.999 and abs(shared["signed"]) < 1e-3 and shared["specific"] == 0.0
    opposite = head({"above": e, "below": -e})  # each word lights up its own side
    assert opposite["score"] > 0.999 and opposite["signed"] > 0.999 and opposite["specific"] > 0.999


def test_relation_tokens_are_the_direction_words(rtep):
    assert role_positions(
        rtep, "red circle is to the left of blue square", "relation", content_only=True
    ) == [5]
    assert role_positions(
        rtep, "red circle is above and to the left of blue square", "relation", content_only=True
    ) == [3, 7]
    assert role_positions(rtep, "red circle is to the left of blue square", "relation") == [
        3,
        4,
        5,
        6,
    ]
    states = relation_states(rtep)
    assert set(states) == set(RELATIONS)
    assert states["above"].shape == (12, 16) and states["upper_left"].shape == (24, 16)
    # rtep: the word vector plus the position code of "above" at word 3, in every core prompt.
    expected = rtep.encode(["red circle is above blue square"])[0][0, 3]
    assert torch.allclose(states["above"], expected.expand(12, -1))


def test_contextual_encoder_states_follow_sub_tokens(tmp_path):
    from test_dit_model import _tiny_t5

    enc = load_encoder(f"t5:{_tiny_t5(tmp_path)}", max_length=12)
    # the word-level test tokenizer: one token per word, then </s>
    assert role_positions(
        enc, "red circle is to the left of blue square", "relation", content_only=True
    ) == [5]
    states = relation_states(enc)
    assert states["left"].shape == (12, 16)
    assert not torch.allclose(states["left"][0], states["left"][1])  # context differs per prompt
    doc = screen_heads(_transformer(), states)
    assert all(-1 <= h["cosine"] <= 1 for h in doc["heads"])


def test_screen_model_round_trip_on_a_bundled_style_dit(rtep, tiny_dit_config, tmp_path):
    from relbench.dit import DiT, DiTPipeline
    from relbench.models.dit_adapter import DiTModel

    cfg = tiny_dit_config(head_dim=4)
    model = DiTModel("tiny", DiTPipeline(DiT(cfg, rtep.dim), rtep, "flow"))
    doc = screen_model(model)
    assert doc["model"]["name"] == "tiny" and doc["encoder"] == "rtep"
    assert len(doc["top"]) == 3 * 3
    path = write_screen(doc, tmp_path / "out")
    assert read_screen(tmp_path / "out") == json.loads(path.read_text())
    with pytest.raises(FileNotFoundError, match="relbench circuits screen"):
        read_screen(tmp_path / "nowhere")


def test_screening_refuses_a_transformer_without_cross_attention(rtep):
    tr = _transformer()
    tr.transformer_blocks[1].attn2 = None
    with pytest.raises(ScreenError, match="block 1 has no cross-attention"):
        screen_heads(tr, relation_states(rtep))
    with pytest.raises(ScreenError, match="no transformer_blocks"):
        screen_heads(torch.nn.Linear(2, 2), relation_states(rtep))


def test_agreement_is_a_rank_correlation(monkeypatch):
    screen = {
        "top": [{"layer": 0, "head": h, "score": s} for h, s in enumerate([0.9, 0.5, 0.2, 0.1])]
    }
    same = {
        "relation_heads": [{"layer": 0, "head": h, "score": s} for h, s in enumerate([4, 3, 2, 1])]
    }
    flip = {
        "relation_heads": [{"layer": 0, "head": h, "score": s} for h, s in enumerate([1, 2, 3, 4])]
    }
    assert agreement(screen, same)["spearman"] == pytest.approx(1.0)
    assert agreement(screen, same)["top_match"] is True
    out = agreement(screen, flip)
    assert out["spearman"] == pytest.approx(-1.0) and out["n_heads"] == 4 and not out["top_match"]
    import builtins

    real_import = builtins.__import__

    def no_scipy(name, *a, **k):
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    fallback = agreement(screen, flip)
    assert fallback["spearman"] == pytest.approx(-1.0) and fallback["p_value"] is None
    with pytest.raises(ValueError, match="share 1 heads"):
        agreement(
            screen,
            {
                "relation_heads": [
                    {"layer": 0, "head": 0, "score": 1.0},
                    {"layer": 5, "head": 5, "score": 1.0},
                ]
            },
        )


def test_cli_screen_and_the_arith_refusal(tiny_checkpoint, tmp_path):
    from typer.testing import CliRunner

    from relbench.cli import app

    cli = CliRunner()
    model = f"dit:{tiny_checkpoint}"
    result = cli.invoke(app, ["circuits", "screen", "--model", model, "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "9 heads screened" in result.output
    doc = read_screen(tmp_path / "s")
    assert doc["model"]["name"] == model and len(doc["heads"]) == 9 * len(RELATIONS)
    arith = ["circuits", "arith", "--model", model, "--out", str(tmp_path / "a.json")]
    result = cli.invoke(app, arith)
    assert result.exit_code == 2 and "rtep encoder has no contextual fusion" in result.output
    assert not (tmp_path / "a.json").exists()
    result = cli.invoke(
        app, ["circuits", "screen", "--model", "oracle", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "exposes no PixArt transformer" in result.output
