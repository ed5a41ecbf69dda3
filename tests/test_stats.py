"""Bootstrap intervals, paired drops and seed consistency on hand-made rows."""

import pytest

from relbench.stats import accuracy_ci, paired_drop, seed_consistency


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
