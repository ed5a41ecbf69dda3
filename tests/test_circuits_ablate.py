"""Ablations with paired seeds, on a tiny random DiT whose images decide their own verdicts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from relbench.circuits import COND_FIRST, Ablation, HookedModel, ablate, parse_target
from relbench.circuits.roles import encoder_role_fn

STEPS = 3


class _CoinFlipOracle:
    """Runs the tiny DiT, then returns the prompt's oracle image when the DiT's image has an even
    pixel sum and a blank one otherwise: every verdict is a deterministic function of the
    generated image, about half correct, and any change to an image re-draws its verdict."""

    name = "coin-flip-oracle"

    def __init__(self, pipe):
        from relbench.models.dit_adapter import DiTModel

        self.inner = DiTModel("tiny", pipe, steps=STEPS, output_size=16)

    def generate(self, requests):
        from relbench.baselines import oracle_image
        from relbench.suites import parse_prompt

        out = []
        for r, img in zip(requests, self.inner.generate(requests)):
            even = int(img.astype(np.int64).sum()) % 2 == 0
            out.append(
                oracle_image(parse_prompt(r.prompt), r.seed, 128)
                if even
                else np.full((128, 128, 3), 128, np.uint8)
            )
        return out

    def describe(self):
        return {"name": self.name}


@pytest.fixture(scope="module")
def hooked(tiny_pipeline):
    return HookedModel(
        "tiny",
        _CoinFlipOracle(tiny_pipeline),
        tiny_pipeline.model.transformer,
        COND_FIRST,
        encoder_role_fn(tiny_pipeline.encoder),
        STEPS,
    )


RUN = {"suite": "core", "n_prompts": 8, "seeds": (0, 1), "steps": STEPS, "batch_size": 8}


def test_ablation_json_pairs_seeds_and_empty_ablation_changes_nothing(hooked, tmp_path):
    nothing = Ablation("none", ())
    result = ablate(
        hooked, [nothing, "all", "L1H2"], step_windows=[None, (0, 1)], out=tmp_path, **RUN
    )
    on_disk = json.loads((tmp_path / "ablation.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    assert {
        "model",
        "suite",
        "n_prompts",
        "seeds",
        "steps",
        "baseline",
        "ablations",
        "random_control",
    } <= set(result)
    base = result["baseline"]["strict"]
    assert 0 < base < 1 and len(result["baseline"]["ci95"]) == 2
    by = {
        (a["target"], None if a["step_window"] is None else tuple(a["step_window"])): a
        for a in result["ablations"]
    }
    assert set(by) == {
        ("none", None),
        ("all", None),
        ("all", (0, 1)),
        ("L1H2", None),
        ("L1H2", (0, 1)),
    }
    none = by[("none", None)]
    assert none["delta"] == 0.0 and none["delta_ci95"] == [0.0, 0.0] and none["strict"] == base
    everything = by[("all", None)]
    assert everything["delta"] != 0.0  # every head zeroed: images, hence verdicts, change
    assert len(everything["heads"]) == 9 and by[("L1H2", None)]["heads"] == ["L1H2"]
    for a in result["ablations"]:  # equal seeds per prompt: the paired mean is the difference
        assert a["delta"] == pytest.approx(a["strict"] - base, abs=1e-12)
        lo, hi = a["delta_ci95"]
        assert lo <= a["delta"] <= hi
        assert a["kind"] == "zero_head" and a["roles"] == []
    assert result["random_control"] == {"k": 0, "draws": 0, "exhaustive": False, "deltas": [], "mean": None}


def test_block_tokens_and_the_random_head_control(hooked):
    result = ablate(
        hooked,
        ["L0+L2H1"],
        kind="block_tokens",
        roles=["relation"],
        random_control=2,
        draws=3,
        seed=7,
        **RUN,
    )
    first, *controls = result["ablations"]
    assert first["heads"] == ["L0H0", "L0H1", "L0H2", "L2H1"] and first["roles"] == ["relation"]
    assert [c["target"] for c in controls] == ["random:2"] * 3 and [
        c["draw"] for c in controls
    ] == [0, 1, 2]
    assert all(len(set(c["heads"])) == 2 and c["kind"] == "block_tokens" for c in controls)
    rc = result["random_control"]
    assert rc["k"] == 2 and rc["draws"] == 3 and rc["deltas"] == [c["delta"] for c in controls]
    assert rc["exhaustive"] is False  # 3 of the 36 two-head sets
    assert rc["mean"] == pytest.approx(np.mean(rc["deltas"]))
    again = ablate(
        hooked,
        [],
        kind="block_tokens",
        roles=["relation"],
        random_control=2,
        draws=3,
        seed=7,
        **RUN,
    )
    assert again["ablations"] == controls  # the draws come from the seed


def test_control_is_exhaustive_once_the_draws_cover_every_head_set():
    from relbench.circuits.ablate import control_head_sets, random_heads

    singles = control_head_sets(1, 3, 3, draws=9)
    assert singles == [((layer, h),) for layer in range(3) for h in range(3)]
    assert control_head_sets(1, 3, 3, draws=50) == singles
    pairs = control_head_sets(2, 3, 3, draws=36)
    assert len(pairs) == len(set(pairs)) == 36 and all(a < b for a, b in pairs)
    rng = np.random.default_rng(4)
    assert control_head_sets(1, 3, 3, draws=5, seed=4) == [random_heads(1, 3, 3, rng) for _ in range(5)]
    with pytest.raises(ValueError, match="draws must be positive"):
        control_head_sets(1, 3, 3, draws=0)


def test_bad_targets_fail_before_generating(hooked, tmp_path):
    with pytest.raises(
        ValueError, match=r"head L0H3 out of range: .* 3 heads per layer \(H0..H2\)"
    ):
        ablate(hooked, ["L0H3"], out=tmp_path, **RUN)
    with pytest.raises(ValueError, match=r"layer L3 out of range"):
        parse_target("L1H0+L3", 3, 3)
    with pytest.raises(ValueError, match="bad head target 'head2'"):
        parse_target("head2", 3, 3)
    with pytest.raises(ValueError, match="zero_head takes no roles"):
        ablate(hooked, ["L0H0"], roles=["relation"], **RUN)
    with pytest.raises(ValueError, match="block_tokens needs the token roles"):
        ablate(hooked, ["L0H0"], kind="block_tokens", **RUN)
    with pytest.raises(ValueError, match=r"step window \[2, 9\]"):
        ablate(hooked, ["L0H0"], step_windows=[(2, 9)], **RUN)
    with pytest.raises(ValueError, match="random control k=10"):
        ablate(hooked, [], random_control=10, **RUN)
    assert not (tmp_path / "ablation.json").exists()
    assert parse_target("L2H1+L2H1+L0H0", 3, 3) == ((2, 1), (0, 0))


# ---- the command line ------------------------------------------------------------------------


def test_cli_synopsis_and_ablate(tiny_checkpoint, tmp_path):
    from typer.testing import CliRunner

    from relbench.cli import app

    runner = CliRunner()
    common = [
        "--model",
        f"dit:{tiny_checkpoint}",
        "--n-prompts",
        "2",
        "--seeds",
        "0",
        "--steps",
        "2",
        "--quiet",
    ]
    res = runner.invoke(app, ["circuits", "synopsis", *common, "--out", str(tmp_path / "syn")])
    assert res.exit_code == 0, res.output
    assert "top relation heads: L" in res.output
    info = json.loads((tmp_path / "syn" / "synopsis.json").read_text())
    assert info["model"]["name"] == f"dit:{tiny_checkpoint}"
    assert info["steps"] == 2 and info["seeds"] == [0]

    res = runner.invoke(
        app,
        [
            "circuits",
            "ablate",
            *common,
            "--heads",
            "L0H1,L2",
            "--kind",
            "block_tokens",
            "--roles",
            "relation",
            "--step-window",
            "0:1",
            "--random-control",
            "2",
            "--draws",
            "2",
            "--out",
            str(tmp_path / "abl"),
        ],
    )
    assert res.exit_code == 0, res.output
    result = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert [(a["target"], a["step_window"]) for a in result["ablations"]] == [
        ("L0H1", [0, 1]),
        ("L2", [0, 1]),
        ("random:2", None),
        ("random:2", None),
    ]
    assert "L0H1 steps 0:1:" in res.output and "random 2 heads × 2 draws" in res.output

    res = runner.invoke(app, ["circuits", "ablate", *common, "--random-control", "1", "--draws", "99",
                              "--out", str(tmp_path / "every")])
    assert res.exit_code == 0, res.output
    every = json.loads((tmp_path / "every" / "ablation.json").read_text())
    heads = [a["heads"] for a in every["ablations"]]
    assert every["random_control"]["exhaustive"] and len(heads) == every["random_control"]["draws"]
    assert heads == [[f"L{layer}H{h}"] for layer in range(len(heads) // 3) for h in range(3)]
    assert "every 1-head set (%d, exhaustive)" % len(heads) in res.output and "largest drops L" in res.output

    res = runner.invoke(
        app, ["circuits", "ablate", *common, "--heads", "L0H1,L0H5", "--out", str(tmp_path / "x")]
    )
    assert res.exit_code == 2 and "head L0H5 out of range" in res.output
    res = runner.invoke(
        app, ["circuits", "synopsis", "--model", "oracle", "--out", str(tmp_path / "y")]
    )
    assert res.exit_code == 2 and "'oracle' has no transformer to hook" in res.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_colour_layout_metric_judges_only_what_it_can_see(hooked):
    """Blank images (half of the coin-flip oracle's) have no colours, so the layout-only metric
    leaves them unjudged, and the oracle images it judges hold their layouts; the headline
    metric counts the blanks as wrong."""
    strict = ablate(hooked, ["L1H2"], **RUN)
    layout = ablate(hooked, ["L1H2"], metric="colour_layout", **RUN)
    assert strict["metric"] == "correct" and layout["metric"] == "colour_layout"
    assert strict["baseline"]["strict"] < 0.8 <= layout["baseline"]["strict"]
    [a] = layout["ablations"]
    assert a["delta"] == pytest.approx(a["strict"] - layout["baseline"]["strict"], abs=1e-12)
    with pytest.raises(ValueError, match="unknown metric 'colour_layuot'.*did you mean 'colour_layout'"):
        ablate(hooked, ["L1H2"], metric="colour_layuot", **RUN)
