"""Bootstrap intervals, paired drops, seed consistency, breakdowns and layout offsets on
hand-made rows."""

import pytest

from relbench.stats import (
    accuracy_ci, breakdowns, layout_offsets, paired_drop, seed_consistency,
)


def _rows(pattern: dict[str, list[bool | None]], pert: str | None = None) -> list[dict]:
    return [
        {"source_id": p, "prompt_id": p if pert is None else f"{p}+{pert}", "correct": c}
        for p, values in pattern.items()
        for c in values
    ]


def test_accuracy_ci_brackets_the_mean_and_ignores_unscorable():
    rows = _rows({"a": [True, True], "b": [True, False], "c": [False, False], "d": [True, None]})
    out = accuracy_ci(rows)
    assert out["mean"] == pytest.approx(4 / 7)
    lo, hi = out["ci95"]
    assert 0 <= lo < out["mean"] < hi <= 1
    assert out["n_prompts"] == 4


def test_constant_accuracy_has_a_zero_width_interval():
    out = accuracy_ci(_rows({p: [True, True] for p in "abcdef"}))
    assert out["mean"] == 1.0 and out["ci95"] == [1.0, 1.0]
    assert accuracy_ci([])["mean"] is None


def test_paired_drop_pairs_by_source_prompt():
    orig = _rows({"a": [True, True], "b": [True, True], "c": [False, True]})
    pert = _rows({"a": [False, False], "b": [True, True], "c": [False, True]}, pert="typos")
    out = paired_drop(orig, pert)
    assert out["drop"] == pytest.approx(1 / 3)  # only prompt a got worse, by 1.0
    assert out["n_prompts"] == 3
    assert out["ci95"][0] <= out["drop"] <= out["ci95"][1]
    assert paired_drop(orig, [])["drop"] is None


def test_seed_consistency_counts_prompts_correct_on_k_of_n():
    rows = _rows({"a": [True, True, True, True], "b": [True, False, True, False],
                  "c": [False, False, False, False]})
    assert seed_consistency(rows) == {"k1": 2 / 3, "k2": 2 / 3, "k3": 1 / 3, "k4": 1 / 3}


def _spec(s_shape, s_color, relation, r_shape, r_color) -> dict:
    return {"subject": {"shape": s_shape, "color": s_color}, "relation": relation,
            "reference": {"shape": r_shape, "color": r_color}}


def _scored_rows() -> list[dict]:
    """Five prompts: two seeds of one, an unscorable row, a row with no bound pair, a colour-only
    prompt."""
    a = _spec("square", "red", "above", "circle", "blue")
    b = _spec("circle", "blue", "left", "square", "red")
    c = _spec("square", "red", "left", "circle", "blue")
    d = _spec("circle", "red", "above", "square", "blue")
    e = _spec(None, "red", "below", None, "blue")
    return [
        {"source_id": "a", "spec": a, "relation": "above", "correct": True, "dx": 0.0, "dy": -0.3},
        {"source_id": "a", "spec": a, "relation": "above", "correct": False, "dx": 0.2, "dy": -0.3},
        {"source_id": "b", "spec": b, "relation": "left", "correct": True, "dx": -0.4, "dy": 0.0},
        {"source_id": "c", "spec": c, "relation": "left", "correct": None, "dx": None, "dy": None},
        {"source_id": "d", "spec": d, "relation": "above", "correct": False, "dx": None,
         "dy": None},
        {"source_id": "e", "spec": e, "correct": True, "dx": 0.1, "dy": 0.5},  # relation from spec
    ]


def test_breakdowns_by_relation_shape_pair_and_colour_order():
    out = breakdowns(_scored_rows())
    rel = out["relation"]
    assert list(rel) == ["above", "below", "left"]  # RELATIONS order
    assert rel["above"]["accuracy"] == pytest.approx(1 / 3)
    assert (rel["above"]["n_scored"], rel["above"]["n_prompts"]) == (3, 2)
    assert rel["left"] == {"accuracy": 1.0, "ci95": [1.0, 1.0], "n_scored": 1, "n_prompts": 1}
    assert rel["below"]["accuracy"] == 1.0

    shapes = out["shape_pair"]
    assert list(shapes) == ["any/any", "circle/square", "square/circle"]
    assert shapes["square/circle"]["accuracy"] == 0.5 and shapes["square/circle"]["n_scored"] == 2
    assert shapes["circle/square"]["accuracy"] == 0.5 and shapes["circle/square"]["n_prompts"] == 2
    assert shapes["any/any"]["accuracy"] == 1.0

    colors = out["color_order"]
    assert list(colors) == ["blue/red", "red/blue"]
    assert colors["red/blue"]["accuracy"] == pytest.approx(2 / 4)  # a, a, d, e scored; c not
    assert colors["blue/red"] == {"accuracy": 1.0, "ci95": [1.0, 1.0], "n_scored": 1,
                                  "n_prompts": 1}


def test_layout_offsets_average_bound_rows_overall_and_per_relation():
    out = layout_offsets(_scored_rows())
    overall = out["overall"]
    assert overall["n"] == 4
    assert overall["dx"] == pytest.approx((0.0 + 0.2 - 0.4 + 0.1) / 4)
    assert overall["dy"] == pytest.approx((-0.3 - 0.3 + 0.0 + 0.5) / 4)
    above = out["per_relation"]["above"]
    assert above == {"dx": 0.1, "dy": -0.3, "dx_sd": 0.1, "dy_sd": 0.0, "n": 2}
    assert out["per_relation"]["left"]["dx"] == -0.4
    assert list(out["per_relation"]) == ["above", "below", "left"]
    assert layout_offsets([])["overall"] == {"dx": None, "dy": None, "dx_sd": None, "dy_sd": None,
                                             "n": 0}
