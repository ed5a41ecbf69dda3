"""The order-blind ceiling (relbench.suites.ceiling). The fact it rests on, that a DiT over the
`rte` encoder draws one image for prompts of the same words, is tested in test_dit_model.py."""

from __future__ import annotations

import pytest

from relbench.scene import ObjectSpec, RelationSpec
from relbench.suites import get_suite
from relbench.suites.ceiling import jointly_satisfiable, order_blind_ceiling, order_blind_groups


def _spec(s, rel, r):
    return RelationSpec(ObjectSpec(*s), rel, ObjectSpec(*r))


def test_core_groups_are_the_four_readings_of_one_bag_of_words():
    groups = order_blind_groups(get_suite("core").prompts)
    assert len(groups) == 24 and all(len(g) == 4 for g in groups)
    texts = {p.prompt for p in groups[0]}
    assert "red circle is above blue square" in texts and "blue square is above red circle" in texts
    assert order_blind_ceiling(get_suite("core")) == {"ceiling": 0.25, "prompts": 96, "groups": 24, "largest_group": 4}


def test_joint_satisfiability():
    a = _spec(("circle", "red"), "above", ("square", "blue"))
    assert jointly_satisfiable(a, _spec(("square", "blue"), "below", ("circle", "red")))  # the inverse
    assert jointly_satisfiable(a, _spec((None, "red"), "above", (None, "blue")))  # less said
    assert not jointly_satisfiable(a, _spec(("square", "blue"), "above", ("circle", "red")))
    assert not jointly_satisfiable(a, _spec(("square", "red"), "above", ("circle", "blue")))


def test_ceilings_of_other_suites_and_bad_input():
    # Two prompts per bag (the swapped order) when the objects differ only in one attribute.
    assert order_blind_ceiling(get_suite("ood-same-shape"))["ceiling"] == 0.5
    assert order_blind_ceiling(get_suite("ood-color-only"))["ceiling"] == 0.5
    # A suite whose prompts all differ in their words is not bounded below 1.
    prompts = [p for p in get_suite("core").prompts if p.spec.subject.color == "red"]
    one_each = [g[0] for g in order_blind_groups(prompts)]
    assert order_blind_ceiling(one_each)["ceiling"] == 1.0
    with pytest.raises(ValueError, match="no prompts"):
        order_blind_ceiling([])



def test_ceiling_cli():
    import json

    from typer.testing import CliRunner

    from relbench.cli import app

    res = CliRunner().invoke(app, ["suites", "ceiling", "core", "ood-same-shape", "--perturb", "reverse-order"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(r["suite"], r["ceiling"]) for r in rows] == [("core+reverse-order", 0.25),
                                                         ("ood-same-shape+reverse-order", 0.5)]
    bad = CliRunner().invoke(app, ["suites", "ceiling", "cor"])
    assert bad.exit_code == 2 and "did you mean 'core'" in bad.output
