"""Circuit cards from synthetic synopsis / screen / ablation files: the numbers, the computed
verdict, missing inputs, and the card beside its model on the leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from relbench.circuits.card import CARD_JSON, CARD_MD, build_card, load_card, verdict

RUN = {"model": {"name": "m"}, "suite": "core", "n_prompts": 8, "seeds": [0, 1], "steps": 4}
"""What the synopsis and the ablation were both run on (the head of their JSON files)."""


def _inputs(root: Path, *, rel_delta: float | None = -0.31) -> tuple[Path, Path, Path]:
    """synopsis dir, screen.json and ablation.json of a 2-layer × 2-head model whose top
    relation head is L1H0 and top object head L0H1."""
    syn = root / "synopsis"
    syn.mkdir(parents=True)
    (syn / "synopsis.json").write_text(
        json.dumps(
            {
                **RUN,
                "layers": 2,
                "heads": 2,
                "n_images": 16,
                "n_bound": 12,
                "relation_heads": [
                    {"layer": 1, "head": 0, "score": 2.5},
                    {"layer": 0, "head": 0, "score": 1.2},
                    {"layer": 1, "head": 1, "score": 0.9},
                    {"layer": 0, "head": 1, "score": 0.4},
                ],
                "object_heads": [
                    {"layer": 0, "head": 1, "score": 3.1},
                    {"layer": 1, "head": 0, "score": 1.0},
                ],
            }
        )
    )
    scores = {(1, 0): 0.6, (0, 0): 0.3, (1, 1): 0.2, (0, 1): 0.1}
    screen = root / "screen.json"
    screen.write_text(
        json.dumps(
            {
                "model": {"name": "m"},
                "heads": [
                    {"layer": l, "head": h, "relation": r, "cosine": c}
                    for (l, h), s in scores.items()
                    for r, c in (("above", s), ("below", -s))
                ],
                "top": [
                    {"layer": l, "head": h, "score": s, "signed": 0.0, "best_relation": "above"}
                    for (l, h), s in scores.items()
                ],
            }
        )
    )
    ablations = [
        {
            "target": "L0H1",
            "kind": "zero_head",
            "roles": [],
            "step_window": None,
            "strict": 0.55,
            "delta": -0.05,
            "delta_ci95": [-0.1, 0.0],
        }
    ]
    if rel_delta is not None:
        ablations += [
            {
                "target": "L1H0",
                "kind": "block_tokens",
                "roles": ["relation"],
                "step_window": None,
                "strict": 0.5,
                "delta": -0.1,
                "delta_ci95": [-0.2, 0.0],
            },
            {
                "target": "L1H0",
                "kind": "zero_head",
                "roles": [],
                "step_window": None,
                "strict": 0.6 + rel_delta,
                "delta": rel_delta,
                "delta_ci95": [rel_delta - 0.05, rel_delta + 0.05],
            },
        ]
    ablation = root / "ablation.json"
    ablation.write_text(
        json.dumps(
            {
                **RUN,
                "baseline": {"strict": 0.6, "ci95": [0.5, 0.7]},
                "ablations": ablations,
                "random_control": {
                    "k": 1,
                    "draws": 4,
                    "deltas": [-0.04, 0.0, 0.01, -0.02],
                    "mean": -0.0125,
                },
            }
        )
    )
    return syn, screen, ablation


def test_card_numbers_and_a_causal_verdict(tmp_path):
    syn, screen, ablation = _inputs(tmp_path)
    card = build_card("m", syn, screen, ablation, tmp_path / "card")
    rel, obj = card["relation_head"], card["object_head"]
    assert (rel["name"], rel["score"], obj["name"], obj["score"]) == ("L1H0", 2.5, "L0H1", 3.1)
    assert rel["ablation"]["kind"] == "zero_head" and rel["ablation"]["delta"] == -0.31
    assert obj["ablation"]["delta"] == -0.05
    assert rel["screen"]["score"] == 0.6 and rel["screen"]["rank"] == 1 and rel["screen"]["of"] == 4
    assert rel["screen"]["cosines"] == {"above": 0.6, "below": -0.6}
    assert card["random_control"] == {
        "k": 1,
        "draws": 4,
        "exhaustive": False,
        "mean": -0.0125,
        "min": -0.04,
        "max": 0.01,
    }
    assert card["screen_synopsis_agreement"]["spearman"] == pytest.approx(1.0)
    assert card["verdict"]["label"] == "causal"
    assert (
        "-0.310" in card["verdict"]["text"]
        and "below all 4 random draws" in card["verdict"]["text"]
    )
    assert load_card(tmp_path / "card") == card
    md = (tmp_path / "card" / CARD_MD).read_text()
    assert "| top relation head | L1H0 | 2.500 | -0.310 [-0.360, -0.260] (zero_head) |" in md
    assert "**Verdict:** L1H0 is a relation head beyond chance" in md
    assert "Synopsis: 12 of 16 images with both objects found" in md


def test_an_exhaustive_control_compares_the_head_with_every_other_head(tmp_path):
    syn, screen, ablation = _inputs(tmp_path)
    data = json.loads(ablation.read_text())
    deltas = {"L0H0": -0.05, "L0H1": 0.0, "L1H0": -0.31, "L1H1": -0.4}  # L1H1 drops more than L1H0
    data["ablations"] += [{"target": "random:1", "kind": "zero_head", "roles": [], "step_window": None,
                           "strict": 0.6 + d, "delta": d, "delta_ci95": [d - 0.05, d + 0.05],
                           "heads": [h], "draw": i} for i, (h, d) in enumerate(deltas.items())]
    data["random_control"] = {"k": 1, "draws": 4, "exhaustive": True, "deltas": list(deltas.values()),
                              "mean": float(np.mean(list(deltas.values())))}
    ablation.write_text(json.dumps(data))
    card = build_card("m", syn, screen, ablation, tmp_path / "card")
    rc = card["random_control"]
    assert rc["exhaustive"] and rc["draws"] == 3 and (rc["min"], rc["max"]) == (-0.4, 0.0)  # L1H0 left out
    assert rc["mean"] == pytest.approx(-0.15) and (rc["rank"], rc["of"]) == (2, 4)
    assert card["verdict"]["label"] == "not_special"
    assert "the other 3 heads (-0.400 … +0.000; it ranks 2 of 4)" in card["verdict"]["text"]
    assert "the relation head ranks 2 of 4" in (tmp_path / "card" / CARD_MD).read_text()
    # without its own target row, the head's Δ comes from its draw in the exhaustive control
    data["ablations"] = [a for a in data["ablations"] if a["target"] != "L1H0"]
    ablation.write_text(json.dumps(data))
    again = build_card("m", syn, screen, ablation)
    assert again["relation_head"]["ablation"]["delta"] == -0.31 and again["random_control"]["rank"] == 2
    assert again["verdict"] == card["verdict"]


def test_verdict_follows_the_numbers():
    control = {"k": 1, "draws": 4, "mean": -0.01, "min": -0.04, "max": 0.01}
    assert (
        verdict("L1H0", {"delta": -0.02, "delta_ci95": [-0.05, 0.01]}, control)[0] == "not_special"
    )
    assert (
        verdict("L1H0", {"delta": 0.05, "delta_ci95": [0.02, 0.08]}, control)[0]
        == "helps_when_removed"
    )
    # below the control's range, but the interval reaches past the control mean: not claimed
    assert (
        verdict("L1H0", {"delta": -0.05, "delta_ci95": [-0.2, 0.02]}, control)[0] == "not_special"
    )
    assert verdict("L1H0", None, control)[0] == "untested"
    assert verdict("L1H0", {"delta": -0.3, "delta_ci95": None}, None)[0] == "no_control"


def test_card_without_an_ablation_of_the_top_head(tmp_path):
    card = build_card("m", *_inputs(tmp_path, rel_delta=None))
    assert card["relation_head"]["ablation"] is None
    assert card["verdict"] == {
        "label": "untested",
        "text": "L1H0 was not ablated: its causal role is untested.",
    }


def test_missing_inputs_name_the_file_and_write_nothing(tmp_path):
    syn, screen, ablation = _inputs(tmp_path)
    out = tmp_path / "card"
    with pytest.raises(
        FileNotFoundError, match=r"ablation file .*nope\.json not found.*circuits ablate"
    ):
        build_card("m", syn, screen, tmp_path / "nope.json", out)
    with pytest.raises(FileNotFoundError, match=r"synopsis file .*synopsis\.json not found"):
        build_card("m", tmp_path, screen, ablation, out)
    assert not (out / CARD_JSON).exists()
    info = json.loads((syn / "synopsis.json").read_text())
    (syn / "synopsis.json").write_text(json.dumps({**info, "n_bound": 0}))
    with pytest.raises(ValueError, match="no image had both objects found"):
        build_card("m", syn, screen, ablation, out)
    (syn / "synopsis.json").write_text(json.dumps(info))
    screen.write_text(
        json.dumps(
            {
                "model": {},
                "heads": [],
                "top": [{"layer": 0, "head": 0, "score": 0.1, "signed": 0.0}],
            }
        )
    )
    with pytest.raises(ValueError, match="has no head L1H0"):
        build_card("m", syn, screen, ablation, out)


def test_leaderboard_shows_the_card_beside_its_model(tmp_path):
    from relbench.leaderboard import CARDS, HTML, JSON, MARKDOWN, build_leaderboard
    from relbench.runner import EvalConfig, run_eval

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "red square is above blue circle"}) + "\n")
    run_eval(EvalConfig("oracle", f"file:{prompts}", seeds=[0]), tmp_path / "run", progress=False)
    board = tmp_path / "board"
    build_card("oracle", *_inputs(tmp_path), board / CARDS / "oracle")
    doc = build_leaderboard([tmp_path / "run"], board)
    card = doc["circuit_cards"]["oracle"]
    assert (
        card["relation_head"] == "L1H0" and card["delta"] == -0.31 and card["verdict"] == "causal"
    )
    assert card["card"] == "cards/oracle/card.md"
    md = (board / MARKDOWN).read_text()
    assert "| L1H0 Δ -0.310 (causal) |" in md and "## Circuit cards" in md
    assert "| oracle | L1H0 (2.500) | -0.310 [-0.360, -0.260] | -0.040 … +0.010 | 0.600 |" in md
    assert "L1H0 Δ -0.310 (causal)" in (board / HTML).read_text()
    assert json.loads((board / JSON).read_text())["circuit_cards"]["oracle"]["control"] == [
        -0.04,
        0.01,
    ]

    (board / CARDS / "oracle" / CARD_JSON).write_text("{}")
    with pytest.raises(ValueError, match="circuit card .*card.json cannot be read"):
        build_leaderboard([tmp_path / "run"], board)


def test_cli_card_writes_the_card_or_names_the_missing_file(tmp_path):
    from typer.testing import CliRunner

    from relbench.cli import app

    syn, screen, ablation = _inputs(tmp_path)
    cli = CliRunner()
    args = ["circuits", "card", "--model", "m", "--synopsis", str(syn), "--screen", str(screen)]
    result = cli.invoke(app, args + ["--ablation", str(ablation), "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "L1H0 is a relation head beyond chance" in result.output
    assert (tmp_path / "c" / CARD_JSON).is_file() and (tmp_path / "c" / CARD_MD).is_file()
    result = cli.invoke(
        app, args + ["--ablation", str(tmp_path / "x.json"), "--out", str(tmp_path / "d")]
    )
    assert result.exit_code == 2 and "x.json not found" in result.output
    assert not (tmp_path / "d").exists()


def test_a_card_publishes_its_inputs_with_relative_paths_and_hashes(tmp_path):
    from relbench.circuits.card import card_inputs, rebuild_cards, sha256_file

    syn, screen, ablation = _inputs(tmp_path / "made")
    out = tmp_path / "cards" / "m"
    card = build_card("m", syn, screen, ablation, out)
    for role, name in (("synopsis", "synopsis.json"), ("screen", "screen.json"),
                       ("ablation", "ablation.json")):
        src = card["sources"][role]
        assert src["file"] == f"inputs/{name}"
        assert src["sha256"] == sha256_file(out / src["file"])
    assert str(tmp_path) not in (out / CARD_JSON).read_text()  # no path of the making machine
    assert set(card_inputs(out)) == {"synopsis", "screen", "ablation"}

    import shutil

    shutil.rmtree(tmp_path / "made")  # a reader has only what is published
    before = (out / CARD_JSON).read_text()
    (out / CARD_MD).unlink()
    assert rebuild_cards(tmp_path / "cards") == [out / CARD_JSON]
    assert (out / CARD_JSON).read_text() == before and (out / CARD_MD).is_file()


def test_rebuilding_refuses_an_input_whose_hash_changed(tmp_path):
    from relbench.circuits.card import rebuild_cards

    out = tmp_path / "cards" / "m"
    build_card("m", *_inputs(tmp_path / "made"), out)
    doc = json.loads((out / "inputs" / "ablation.json").read_text())
    doc["baseline"]["strict"] = 0.5
    (out / "inputs" / "ablation.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="ablation.json: sha256 differs"):
        rebuild_cards(tmp_path / "cards")


def test_a_card_built_without_an_out_dir_records_names_not_paths(tmp_path):
    card = build_card("m", *_inputs(tmp_path))
    assert card["sources"]["screen"] == {
        "file": "screen.json", "sha256": card["sources"]["screen"]["sha256"], "published": False}


def test_published_cards_name_no_absolute_path_and_match_their_inputs():
    from relbench.circuits.card import card_inputs

    cards = sorted((Path(__file__).resolve().parent.parent / "leaderboards" / "cards").glob(
        f"*/{CARD_JSON}"))
    assert cards
    for path in cards:
        sources = json.loads(path.read_text())["sources"]
        for role, src in sources.items():
            assert isinstance(src, dict) and not Path(src["file"]).is_absolute(), (path, role)
        assert set(card_inputs(path.parent)) == {"synopsis", "screen", "ablation"}


def test_cli_rebuild_cards_rebuilds_each_card_or_says_there_is_none(tmp_path):
    from typer.testing import CliRunner

    from relbench.cli import app

    build_card("m", *_inputs(tmp_path / "made"), tmp_path / "cards" / "m")
    cli = CliRunner()
    result = cli.invoke(app, ["circuits", "rebuild-cards", str(tmp_path / "cards")])
    assert result.exit_code == 0 and "rebuilt" in result.output and "m/card.json" in result.output
    result = cli.invoke(app, ["circuits", "rebuild-cards", str(tmp_path / "made")])
    assert result.exit_code == 2 and "no <model>/card.json" in result.output
