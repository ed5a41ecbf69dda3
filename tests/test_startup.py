"""Start-up cost of the `relbench` command: heavy libraries load only in the commands that use
them, so `relbench --help`, every error message and `relbench score` start fast. Each check
runs in a fresh interpreter, since this test process has long since imported everything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HEAVY = ("datasets", "pandas", "torch", "diffusers", "transformers", "matplotlib", "tqdm",
         "numpy", "cv2", "pyarrow", "scipy", "skimage")
"""Top-level packages `import relbench.cli` (and so `relbench --help`) must not load."""

TORCH_STACK = ("torch", "diffusers", "transformers", "datasets", "pandas", "matplotlib", "pyarrow")
"""What scoring a folder must not load: the scorer is classical (numpy/OpenCV)."""


def _run(code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter; stdout is the last line it prints."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def _loaded(names: tuple[str, ...]) -> str:
    return (f"import json, sys; print(json.dumps(sorted(n for n in {list(names)!r} "
            f"if n in sys.modules)))")


def test_importing_the_cli_loads_no_heavy_library():
    res = _run("import relbench.cli\n" + _loaded(HEAVY))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []


def test_help_lists_every_command_without_loading_a_heavy_library():
    res = _run("from typer.testing import CliRunner\n"
               "from relbench.cli import app\n"
               "r = CliRunner().invoke(app, ['--help'], terminal_width=200)\n"
               "assert r.exit_code == 0, r.output\n"
               "import json\nprint(json.dumps(r.output))\n" + _loaded(HEAVY))
    assert res.returncode == 0, res.stderr
    *_, help_line, loaded_line = res.stdout.strip().splitlines()
    text = json.loads(help_line)
    for command in ("data", "suites", "score", "eval", "train", "refine-decoder", "log",
                    "leaderboard", "rescore", "circuits"):
        assert f" {command} " in text, f"{command} missing from relbench --help"
    assert json.loads(loaded_line) == []


def test_scoring_a_folder_loads_neither_torch_nor_the_dataset_stack(tmp_path: Path):
    import cv2

    img = np.full((64, 64, 3), 128, np.uint8)
    img[8:24, 8:24] = (0, 0, 255)  # BGR: a red square above …
    img[40:56, 8:24] = (255, 0, 0)  # … a blue square
    cv2.imwrite(str(tmp_path / "a.png"), img)
    (tmp_path / "metadata.jsonl").write_text(
        json.dumps({"file": "a.png", "prompt": "red square above blue square"}) + "\n")
    res = _run("from typer.testing import CliRunner\n"
               "from relbench.cli import app\n"
               f"r = CliRunner().invoke(app, ['score', {str(tmp_path)!r}, '--quiet', '--json'])\n"
               "assert r.exit_code == 0, r.output\n" + _loaded(TORCH_STACK))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []
    rows = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert [r["file"] for r in rows] == ["a.png"] and rows[0]["correct"] is not None


def test_circuits_without_torch_names_the_extra_to_install(tmp_path: Path):
    # sys.modules["torch"] = None makes `import torch` raise ImportError, as on a machine
    # without it; --help still works there.
    res = _run("import sys\nsys.modules['torch'] = None\n"
               "from typer.testing import CliRunner\n"
               "from relbench.cli import app\n"
               "runner = CliRunner()\n"
               "h = runner.invoke(app, ['circuits', 'screen', '--help'])\n"
               "assert h.exit_code == 0, h.output\n"
               f"r = runner.invoke(app, ['circuits', 'screen', '--model', 'rtep-micro', "
               f"'--out', {str(tmp_path / 'screen')!r}])\n"
               "import json\nprint(json.dumps([r.exit_code, r.output]))")
    assert res.returncode == 0, res.stderr
    code, output = json.loads(res.stdout.strip().splitlines()[-1])
    assert code == 2
    assert "relbench circuits needs torch" in output and "pip install 'relbench[dit]'" in output
    assert "Traceback" not in output
