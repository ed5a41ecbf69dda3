"""Published numbers in README.md and docs/ are generated from leaderboards/leaderboard.json.

If a test here fails after the board changed, regenerate the numbers with
`python leaderboards/build.py --board-only` (it rewrites every `<!-- board:... -->` region).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from relbench.leaderboard_docs import (
    RegionError, documents, render_regions, strip_regions, update_files,
)

ROOT = Path(__file__).resolve().parent.parent
BOARD = ROOT / "leaderboards" / "leaderboard.json"
FIX = "regenerate with: python leaderboards/build.py --board-only"


@pytest.fixture(scope="module")
def board() -> dict:
    return json.loads(BOARD.read_text())


def _doc(overall: float = 0.5) -> dict:
    """A one-row leaderboard document."""
    return {"rows": [{
        "model": "m", "suite": "core", "overall": overall, "ci95_low": overall - 0.1,
        "ci95_high": overall + 0.1, "relation_strict": overall, "n_scored": 8, "n_unscorable": 0,
        "per_relation": {"above": {"accuracy": 1.0}, "upper_left": {"accuracy": 0.25}},
        "found": {"shape": 0.75, "color": 1.0},
        "per_perturbation": {"typos": {"accuracy": 0.375, "ci95": [0.25, 0.5], "drop": 0.125,
                                       "drop_ci95": [0.0, 0.25]}},
    }]}


def test_readme_and_docs_hold_the_boards_numbers(board):
    stale = [str(p.relative_to(ROOT)) for p in documents(ROOT)
             if render_regions(p.read_text(), board, str(p)) != p.read_text()]
    assert not stale, f"board numbers out of date in {', '.join(stale)}; {FIX}"


def test_the_headline_table_is_generated_in_the_readme():
    text = (ROOT / "README.md").read_text()
    assert "<!-- board:headline suite=core -->" in text
    assert "<!-- board:chance-example" in text


def test_readme_is_a_front_page_not_a_notebook():
    assert len((ROOT / "README.md").read_text()) <= 8000


def test_no_board_interval_is_typed_by_hand(board):
    """Every overall accuracy with its interval that the board publishes, outside a generated
    region, would be a hand-typed copy that drifts."""
    intervals = {f"{r['ci95_low']:.3f}–{r['ci95_high']:.3f}" for r in board["rows"]
                 if r.get("ci95_low") is not None and r["ci95_low"] != r["ci95_high"]}
    assert intervals
    for path in documents(ROOT):
        typed = strip_regions(path.read_text())
        found = sorted(i for i in intervals if i in typed)
        assert not found, f"{path.relative_to(ROOT)} types board intervals {found}; use a region"


def test_a_region_follows_the_board_it_is_rendered_from():
    text = "Top:\n<!-- board:headline suite=core -->\nold\n<!-- /board -->\nend\n"
    first = render_regions(text, _doc(0.5))
    assert "| `m` | 0.500 [0.400–0.600] | 0.500 | 0.25–0.25 |" in first
    assert "old" not in first and first.endswith("<!-- /board -->\nend\n")
    assert render_regions(first, _doc(0.5)) == first  # idempotent
    assert "0.700 [0.600–0.800]" in render_regions(first, _doc(0.7))


def test_an_inline_value_stays_inline():
    text = "scores <!-- board:value model=m field=overall -->0.1<!-- /board --> on core"
    assert render_regions(text, _doc(0.5)) == (
        "scores <!-- board:value model=m field=overall -->0.500<!-- /board --> on core")


def test_the_eval_printout_is_rebuilt_from_the_run():
    out = render_regions("<!-- board:chance-example model=m -->\n<!-- /board -->", _doc(0.5))
    assert "m on core: overall 0.500 [95% CI 0.400–0.600] (8 scored, 0 unscorable)" in out
    assert "  typos: overall 0.375 [95% CI 0.250–0.500], paired drop +0.125" in out


def test_bad_regions_are_errors_naming_file_and_line(tmp_path):
    with pytest.raises(RegionError, match=r"doc.md:2: unknown board region 'nope'"):
        render_regions("x\n<!-- board:nope -->\n<!-- /board -->", _doc(), "doc.md")
    with pytest.raises(RegionError, match="not closed"):
        render_regions("<!-- board:headline -->\nno end", _doc(), "doc.md")
    with pytest.raises(RegionError, match="no row for model 'other'"):
        render_regions("<!-- board:value model=other -->x<!-- /board -->", _doc(), "doc.md")


def test_update_files_rewrites_only_what_changed(tmp_path):
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text("<!-- board:value model=m -->0.1<!-- /board -->\n")
    b.write_text("no regions\n")
    assert update_files([a, b], _doc(0.5)) == [a]
    assert re.search(r"-->0\.500<!--", a.read_text())
    assert update_files([a, b], _doc(0.5)) == []
