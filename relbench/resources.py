"""Where relbench's versioned data lives: suites in `prompts/`, scorer configs in `detectors/`.

Both sit at the top of the source tree (relbench is installed from it, `pip install -e .`);
`RELBENCH_HOME` points elsewhere for a relocated copy.
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The directory holding `prompts/` and `detectors/`."""
    env = os.environ.get("RELBENCH_HOME")
    root = Path(env) if env else Path(__file__).resolve().parents[1]
    if not (root / "prompts").is_dir() or not (root / "detectors").is_dir():
        raise FileNotFoundError(
            f"relbench data directories prompts/ and detectors/ not found under {root}; "
            "install relbench from its source tree (pip install -e .) or set RELBENCH_HOME"
        )
    return root


def prompts_dir() -> Path:
    return repo_root() / "prompts"


def detectors_dir() -> Path:
    return repo_root() / "detectors"
