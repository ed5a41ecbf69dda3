"""The leaderboard page: layout for a 1280 px screen, labels, sorting, rendered cards."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from relbench.leaderboard_page import code_text, render_page, short_label

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "leaderboards" / "index.html"


def _row(model: str, suite: str, overall: float, **extra) -> dict:
    return {"model": model, "suite": suite, "overall": overall, "ci95_low": overall - 0.05,
            "ci95_high": overall + 0.05, "relation_strict": overall, "all_seeds_correct": 0.5,
            "n_scored": 8, "n_unscorable": 0, "per_relation": {"above": {"accuracy": overall}},
            "run": {"path": f"runs/{suite}", "model": {"name": model, "args": {"steps": 14}},
                    "seeds": [0, 1]}, **extra}


def _doc() -> dict:
    long = "diffusers:/home/someone/checkpoints/pixart-sigma"
    return {
        "title": "board", "scorer": {"scorer": "default", "scorer_version": "2.0",
                                     "scorer_config_hash": "ab" * 32},
        "suites": {"core": {"suite_version": "1.0.0", "prompt_hash": "cd" * 32},
                   "profile": {"suite_version": "1.0.0", "prompt_hash": "ef" * 32}},
        "columns": ["model", "overall", "accuracy:typos", "drop:typos"],
        "rows": [_row("oracle", "core", 1.0, **{"accuracy:typos": 1.0, "drop:typos": 0.0}),
                 _row(long, "core", 0.5, **{"accuracy:typos": 0.25, "drop:typos": 0.25}),
                 _row("oracle", "profile", 1.0)],
    }


def test_short_labels_keep_the_kind_and_the_last_path_part():
    assert short_label("rtep-micro") == "rtep-micro"
    assert short_label("diffusers:/a/b/pixart-sigma/") == "diffusers:pixart-sigma"
    assert short_label("folder:C:\\runs\\x") == "folder:x"
    assert short_label("diffusers:" + "p" * 40).endswith("…")
    assert len(short_label("diffusers:" + "p" * 40)) == 22


def test_backticks_become_code_and_html_is_escaped():
    assert code_text("run `a<b` now") == "run <code>a&lt;b</code> now"


def test_one_table_per_suite_and_a_robustness_table():
    page = render_page(_doc(), note="Rebuild with `python leaderboards/build.py`.")
    assert page.count("<table class='sortable'>") == 3  # core, profile, robustness on core
    assert "id='suite-core'" in page and "id='suite-profile'" in page and "id='robustness'" in page
    assert "<code>python leaderboards/build.py</code>" in page and "`" not in page.split(
        "<script>")[0]
    # the long diffusers path is shortened, with the full source on hover
    assert ">diffusers:pixart-sigma</td>" in page
    assert "title='diffusers:/home/someone/checkpoints/pixart-sigma {&quot;steps" in page
    # the robustness table has perturbations as rows and the paired change under the accuracy
    assert "<code>typos</code></td><td class='good' data-v='1.0'>1.000<span class='sub'>+0.000" in page
    assert "data-v='0.25'>0.250<span class='sub'>-0.250" in page


def test_headers_stick_and_sort_best_first():
    page = render_page(_doc())
    assert re.search(r"th \{[^}]*position: sticky; top: 0", page)
    assert "overflow-x" not in page  # a scrolling wrapper would stop the header sticking
    assert "data-best='low'" in page  # unscorable: fewer is better
    assert 'dir === null ? (numeric ? best : "ascending")' in page


def test_cards_are_rendered_as_html_on_their_suite():
    doc = _doc()
    doc["circuit_cards"] = {"oracle": {
        "relation_head": "L1H0", "relation_score": 2.5, "delta": -0.31, "delta_ci95": [-0.36, -0.26],
        "control": [-0.04, 0.01], "screen_score": 0.6, "object_head": "L2H1", "object_score": 3.0,
        "verdict": "causal", "verdict_text": "L1H0 is a relation head.", "suite": "core",
        "card": "cards/oracle/card.md"}}
    page = render_page(doc)
    core = page.split("id='suite-core'")[1].split("id='suite-profile'")[0]
    profile = page.split("id='suite-profile'")[1].split("id='robustness'")[0]
    assert "L1H0 Δ -0.310 (causal)" in core and "circuit card" not in profile
    assert "<div class='card' id='card-oracle'>" in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run_chromium(*args: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        return subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--window-size=1280,900",
             "--hide-scrollbars", *args],
            capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed")
def test_published_page_fits_1280_px_and_sorts_best_first(tmp_path):
    """Screenshots leaderboards/index.html at 1280 px, then runs its #selftest hook (it reverses
    the first suite table, clicks the overall header twice and reports the page's width)."""
    from PIL import Image

    shot = tmp_path / "board.png"
    _run_chromium(f"--screenshot={shot}", PAGE.as_uri())
    image = Image.open(shot)
    assert image.size == (1280, 900)
    assert len(image.convert("L").getcolors(1 << 16) or []) > 20  # not a blank page

    dom = _run_chromium("--virtual-time-budget=5000", "--dump-dom", PAGE.as_uri() + "#selftest")
    title = re.search(r"<title>(.*?)</title>", dom.stdout)
    assert title, dom.stderr[-500:]
    fields = dict(kv.split("=") for kv in title.group(1).split()[1:])
    assert fields["first_click_best_first"] == "true"
    assert fields["second_click_reversed"] == "true"
    assert int(fields["scroll_width"]) <= 1280


def test_published_figures_are_drawn_at_page_width():
    """Shown at page width (≤ 1200 px of content), a figure wider than that is shrunk until its
    labels cannot be read; the plots are drawn to fit instead."""
    from PIL import Image

    for name in ("accuracy_per_perturbation.png", "accuracy_per_relation.png"):
        width, _ = Image.open(ROOT / "leaderboards" / name).size
        assert 900 <= width <= 1200, (name, width)
