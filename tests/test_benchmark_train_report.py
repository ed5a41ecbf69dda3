"""benchmarks/train.py report: time to each accuracy target, read from a training log."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "benchmarks" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _log(path: Path, evals: list[tuple[int, float, float]]) -> Path:
    rows = [{"step": 10, "wall_s": 5.0, "loss": 0.9}]
    rows += [{"step": s, "wall_s": w, "strict_accuracy": a, "overall": a} for s, w, a in evals]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_report_finds_the_first_evaluation_at_each_target_and_the_table_gives_ratios(tmp_path, capsys):
    bench = _script()
    a = _log(tmp_path / "a.jsonl", [(100, 60.0, 0.4), (200, 120.0, 0.55), (300, 180.0, 0.45), (400, 240.0, 0.85)])
    b = _log(tmp_path / "b.jsonl", [(100, 30.0, 0.6), (200, 60.0, 0.7)])
    ra = bench.report(a)
    assert (ra["step_to_0.5"], ra["wall_s_to_0.5"]) == (200, 120.0)
    assert (ra["step_to_0.8"], ra["wall_s_to_0.8"]) == (400, 240.0)
    assert ra["step_to_0.9"] is None and ra["best_strict"] == 0.85 and ra["steps"] == 400
    bench.main(["report", str(a), str(b)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    assert lines[2].endswith("| 200, 2.0 (1.00×) | 400, 4.0 (1.00×) | – |")
    assert lines[3].endswith("| 0.700 | 100, 0.5 (0.25×) | – | – |")  # b reached 0.5 in a quarter of a's time
    bench.main(["report", str(b), "--json"])
    assert json.loads(capsys.readouterr().out)["step_to_0.5"] == 100
