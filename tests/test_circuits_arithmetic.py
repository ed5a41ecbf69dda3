"""Embedding arithmetic: effect vectors at the second shape token of a contextual encoder (a tiny
random T5), state edits, sampling from given states, the layout report, and the rte/rtep refusal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from relbench.circuits import arithmetic
from relbench.circuits.arithmetic import (
    NoContextualFusion,
    edit_states,
    effect_vector,
    effect_vectors,
    generate_from_states,
    run_arithmetic,
)
from relbench.circuits.screen import role_positions
from relbench.dit import DiT, DiTPipeline, load_encoder
from relbench.models.dit_adapter import DiTModel

PROMPTS = ["red circle is above blue square", "blue square is above red triangle"]


@pytest.fixture(scope="module")
def t5(tmp_path_factory):
    from test_dit_model import _tiny_t5

    path = _tiny_t5(tmp_path_factory.mktemp("t5"))
    return load_encoder(f"t5:{path}", max_length=12)


@pytest.fixture(scope="module")
def model(t5, tiny_dit_config):
    torch.manual_seed(0)
    dit = DiT(tiny_dit_config(head_dim=4, encoder=t5.name), t5.dim)
    torch.nn.init.normal_(
        dit.transformer.proj_out.weight, std=0.5
    )  # else the output ignores the text
    return DiTModel("tiny-t5", DiTPipeline(dit, t5, "flow"), steps=2, output_size=32)


def test_effect_vectors_are_antisymmetric_and_nonzero(t5):
    v = effect_vector(t5, "above", "below")
    assert v.shape == (16,) and float(v.norm()) > 1e-3  # T5 mixes the relation into "square"
    assert torch.allclose(v, -effect_vector(t5, "below", "above"), atol=1e-6)
    table = effect_vectors(t5, ["above", "below", "left"])
    assert set(table) == {
        "above->below",
        "above->left",
        "below->above",
        "below->left",
        "left->above",
        "left->below",
    }
    assert table["above->below"]["norm"] == table["below->above"]["norm"] > 0


@pytest.mark.parametrize("mode", ["add", "swap"])
def test_edits_touch_only_the_second_shape_token(t5, mode):
    states, edited, _ = edit_states(t5, PROMPTS, "below", mode=mode)
    changed = (states - edited).abs().sum(-1) > 0  # (B, L)
    for i, p in enumerate(PROMPTS):
        assert changed[i].nonzero().ravel().tolist() == role_positions(t5, p, "shape2")
    if mode == "swap":  # the shape2 state of "red circle is below blue square" itself
        other, _ = t5.encode(["red circle is below blue square"])
        assert torch.allclose(edited[0, 5], other[0, 5])
    _, none, _ = edit_states(t5, PROMPTS, "below", mode="add", alpha=0.0)
    assert torch.equal(none, states)
    with pytest.raises(ValueError, match="unknown arithmetic mode 'mul'"):
        edit_states(t5, PROMPTS, "below", mode="mul")


def test_sampling_from_given_states_matches_the_pipeline(model, t5):
    states, edited, mask = edit_states(t5, PROMPTS, "below", alpha=3.0)
    plain = model.pipe.generate(PROMPTS, [0, 1], steps=2, output_size=32)
    same = generate_from_states(model.pipe, states, mask, [0, 1], steps=2, output_size=32)
    moved = generate_from_states(model.pipe, edited, mask, [0, 1], steps=2, output_size=32)
    assert all(np.array_equal(a, b) for a, b in zip(plain, same))
    assert not any(np.array_equal(a, b) for a, b in zip(plain, moved))
    with pytest.raises(ValueError, match="2 state rows and 2 mask rows for 3 seeds"):
        generate_from_states(model.pipe, states, mask, [0, 1, 2])


def test_report_measures_the_layout_shift_with_paired_seeds(model, monkeypatch):
    """Stand-in images: the true layout of each prompt before the edit and of the target
    relation after it, so the report must show dy growing and the target found afterwards."""
    from relbench.baselines import oracle_image
    from relbench.scene import RelationSpec
    from relbench.suites import parse_prompt

    calls = []

    def fake_generate(pipe, states, mask, seeds, **sampling):
        calls.append(list(seeds))
        after = len(calls) == 2
        out = []
        for k, seed in enumerate(seeds):
            spec = parse_prompt(PROMPTS[k // 2])
            if after:
                spec = RelationSpec(spec.subject, "below", spec.reference)
            out.append(oracle_image(spec, seed, 128))
        return out

    monkeypatch.setattr(arithmetic, "generate_from_states", fake_generate)
    res = run_arithmetic(model, source="above", target="below", seeds=[0, 1], prompts=PROMPTS)
    assert calls == [[0, 1, 0, 1]] * 2  # paired seeds: same seeds before and after
    assert res["n_images"] == 4 and res["n_paired"] == 4
    assert res["before"]["dy"] < 0 < res["after"]["dy"]
    assert res["before"]["target_found"] == 0.0 and res["after"]["target_found"] == 1.0
    assert res["paired_shift"]["dy"] > 0.1 and res["paired_shift"]["toward_target"] > 0.1
    assert res["expected_direction"] == [0.0, 1.0] and res["paired_shift"]["n_prompts"] == 2
    lo, hi = res["paired_shift"]["dy_ci95"]
    assert lo <= res["paired_shift"]["dy"] <= hi


def test_report_on_a_tiny_random_dit_runs_end_to_end(model):
    res = run_arithmetic(model, source="above", target="below", seeds=[0], prompts=PROMPTS[:1])
    assert res["encoder"].startswith("t5:") and res["n_images"] == 1
    assert res["effect"]["relative_norm"] > 0
    assert res["n_paired"] <= 1  # a random model's images rarely hold both objects


def test_rte_and_rtep_are_refused_with_the_reason(tiny_dit_config):
    for name in ("rte", "rtep"):
        enc = load_encoder(name, dim=16, max_length=12)
        with pytest.raises(
            NoContextualFusion, match=f"the {name} encoder has no contextual fusion"
        ):
            effect_vector(enc, "above", "below")
    enc = load_encoder("rtep", dim=16, max_length=12)
    cfg = tiny_dit_config(head_dim=4)
    model = DiTModel("tiny-rtep", DiTPipeline(DiT(cfg, enc.dim), enc, "flow"), steps=2)
    with pytest.raises(NoContextualFusion, match="position code"):
        run_arithmetic(model)


def test_bad_requests_are_named(model):
    with pytest.raises(ValueError, match="both 'above'"):
        run_arithmetic(model, source="above", target="above")
    with pytest.raises(ValueError, match="is not a 'above' prompt"):
        run_arithmetic(model, prompts=["red circle is below blue square"])
    with pytest.raises(ValueError, match="did you mean 'below'"):
        run_arithmetic(model, target="belw")
