"""Guards for input relbench did not make: paths named by rows, run-directory locks, JSON output.

Folders, run directories and checkpoints come from other people. A path taken from a row
(`file` in metadata.jsonl or samples.jsonl) must stay inside the folder it was read from, with
symlinks followed; a run directory is written by one process at a time; a row is written as
valid JSON whatever floats it echoes.
"""

from __future__ import annotations

import functools
import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import orjson

from relbench.scene import COLOR_RGB, SHAPES, RelationSpec, did_you_mean

LOCK_FILE = ".relbench.lock"
"""The lock file a writer holds inside a run directory."""


class UnsafePathError(ValueError):
    """A path from a row that is absolute, empty, or leads outside its folder."""


class DirLockedError(ValueError):
    """Another process holds the lock on a run directory."""


def path_inside(root: Path | str, name: object) -> Path:
    """`root / name`, refused unless it stays inside `root` once every symlink is followed.

    The error never says whether the outside target exists, so a row cannot probe the disk.
    Raises UnsafePathError for a non-string, empty, absolute or escaping `name`.
    """
    return Path(str_inside(root, name))


def str_inside(root: Path | str, name: object) -> str:
    """`path_inside` as a string (no Path object: cheaper, row after row)."""
    if not isinstance(name, str) or not name:
        raise UnsafePathError(f"'file' must be a non-empty relative path, got {name!r}")
    if "\x00" in name:
        raise UnsafePathError(f"file {name!r} contains a NUL byte")
    if os.path.isabs(name):
        raise UnsafePathError(f"file {name!r} is an absolute path; paths must be relative")
    base = _real_root(os.fspath(root))
    if os.sep not in name and name not in (".", "..") and not (os.altsep and os.altsep in name):
        # A plain name in the folder (the common case) is inside unless it is a symlink: one
        # lstat instead of resolving every component of the path.
        direct = os.path.join(base, name)
        try:
            if not stat.S_ISLNK(os.lstat(direct).st_mode):
                return direct
        except FileNotFoundError:
            return direct
        except (OSError, ValueError):  # name too long, bad characters
            raise UnsafePathError(f"file {name!r} does not resolve inside the folder") from None
    try:
        target = os.path.realpath(os.path.join(base, name))  # strings: cheap on 300k rows
    except (OSError, ValueError):  # name too long, bad characters
        raise UnsafePathError(f"file {name!r} does not resolve inside the folder") from None
    if not target.startswith(base.rstrip(os.sep) + os.sep):
        raise UnsafePathError(f"file {name!r} leads outside the folder; refused")
    return target


@functools.lru_cache(maxsize=64)
def _real_root(root: str) -> str:
    """The folder with every symlink resolved (cached: one folder serves many rows)."""
    return os.path.realpath(root)


class DirLock:
    """An advisory lock (`fcntl.flock`) on `directory/.relbench.lock`, taken without waiting.

    `shared=False` (one writer) conflicts with every other holder; `shared=True` lets several
    cooperating processes (the ranks of one distributed run) hold it together while still
    excluding an exclusive holder. The lock goes with the process, so a killed run never leaves
    a stale lock behind.
    """

    def __init__(
        self, directory: Path | str, *, shared: bool = False, name: str = LOCK_FILE
    ) -> None:
        self.path = Path(directory) / name
        self.shared = shared
        self._fd: int | None = None

    def acquire(self) -> DirLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DirLockedError(
                f"{self.path.parent} is in use by another relbench process (lock {self.path.name} "
                "is held); wait for it to finish or choose another --out directory"
            ) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def check_spec(spec: RelationSpec) -> RelationSpec:
    """`spec` if its shapes and colours are ones relbench knows, else a ValueError naming the
    word: an unknown word is a bad input row, not a model failure."""
    for side in (spec.subject, spec.reference):
        if side.shape is not None and (not isinstance(side.shape, str) or side.shape not in SHAPES):
            raise ValueError(f"unknown shape {side.shape!r}{did_you_mean(str(side.shape), SHAPES)}")
        if side.color is not None and (not isinstance(side.color, str)
                                       or side.color not in COLOR_RGB):
            raise ValueError(
                f"unknown colour {side.color!r}{did_you_mean(str(side.color), COLOR_RGB)}")
    if not isinstance(spec.relation, str):
        raise ValueError(f"relation must be a string, got {spec.relation!r}")
    return spec


def check_seeds(seeds: list[int]) -> list[int]:
    """Seeds as a run takes them: integers in [0, 2**63), each once (a repeated seed would count
    its images twice)."""
    seen: set[int] = set()
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**63:
            raise ValueError(f"seed {s!r} is not an integer in [0, 2**63)")
        if s in seen:
            raise ValueError(f"seed {s} is given twice; each seed counts once")
        seen.add(s)
    return list(seeds)


def finite(obj: Any) -> Any:
    """`obj` with every NaN or infinite float replaced by None (JSON has no such numbers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def json_line(row: dict[str, Any]) -> str:
    """One row as strict JSON (NaN/Infinity become null) plus a newline.

    Written by orjson (compact, UTF-8, non-finite floats as null), several times faster than
    the standard library on scored rows; a row orjson refuses (an integer past 64 bits, a lone
    surrogate, a key that is not a string, a type it does not know) is written by the standard
    library as before, which raises for what JSON cannot hold."""
    try:
        return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        pass
    try:
        return _STRICT_JSON.encode(row) + "\n"
    except ValueError:
        return _STRICT_JSON.encode(finite(row)) + "\n"


_STRICT_JSON = json.JSONEncoder(allow_nan=False)
"""`json.dumps(row, allow_nan=False)`, built once (`dumps` builds an encoder on every call
that passes an option)."""
