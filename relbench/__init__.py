"""relbench: does a text-to-image diffusion transformer put objects where the prompt says?"""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """`relbench.__version__`, read from the installed metadata on first use: importlib.metadata
    costs tens of milliseconds, which every `relbench` command would otherwise pay at start-up."""
    if name != "__version__":
        raise AttributeError(f"module 'relbench' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("relbench")
    except PackageNotFoundError:  # running from a source tree that was not installed
        value = "0.0.0+unknown"
    globals()["__version__"] = value
    return value
