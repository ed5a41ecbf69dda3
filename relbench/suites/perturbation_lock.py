"""The perturbation lock: what each of relbench's perturbations makes of each registered suite.

Suites are data, locked by `prompts/frozen/index.json`; perturbations are code, so a code change
could silently change the prompts a perturbed run draws. `prompts/frozen/perturbations.json`
holds, for each of relbench's perturbations, its version and, per registered suite, the
`prompt_hash` of the suite it perturbs at seed `LOCK_SEED` (with that suite's version).
Applying a perturbation to a registered suite checks it against the lock, whatever the seed it
is applied with (the output at the lock seed is compared): a changed output under the same
version is refused, naming the perturbation, the suite and what differs.

`relbench suites lock-perturbations` checks the lock; `--write` regenerates it, refusing (like
`relbench suites build --write`) an output that changed while the version did not.

Perturbations installed packages register (`relbench.perturbations` entry points) and those
registered from outside relbench's modules are not locked: their version is their own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relbench.resources import prompts_dir

if TYPE_CHECKING:
    from relbench.suites.perturbations import Perturbation
    from relbench.suites.suite import Suite

LOCK_FILE = "perturbations.json"
LOCK_SEED = 0
"""The seed the locked outputs are drawn with (the one `get_suite("core+typos")` uses)."""
SCHEMA_VERSION = "1"
"""Schema number of the lock file (relbench.versions: a plain integer)."""
FIX = "run `relbench suites lock-perturbations` to see why"


class PerturbationLockError(ValueError):
    """A perturbation's output on a registered suite disagrees with the lock."""


def lock_path() -> Path:
    """`prompts/frozen/perturbations.json`."""
    return prompts_dir() / "frozen" / LOCK_FILE


def read_lock() -> dict[str, dict[str, Any]]:
    """The lock: perturbation → {"version", "suites": {suite: {"suite_version", "prompt_hash"}}};
    empty when the file does not exist."""
    path = lock_path()
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("schema_version") != SCHEMA_VERSION or data.get("seed") != LOCK_SEED:
        raise ValueError(f"{path}: schema_version {data.get('schema_version')!r} and seed "
                         f"{data.get('seed')!r}, expected {SCHEMA_VERSION!r} and {LOCK_SEED}")
    return data["perturbations"]


def is_locked(pert: Perturbation) -> bool:
    """Whether `pert` is one of relbench's own (registered by a relbench module), which the lock
    must cover; an installed package's or a user's own perturbation is not."""
    return pert.extension is None and (
        pert.name in read_lock() or getattr(pert.fn, "__module__", "").startswith("relbench."))


def registered_suite(suite: Suite) -> bool:
    """Whether `suite` is a registered suite as frozen (not perturbed, not a user's file)."""
    from relbench.suites.registry import read_index

    locked = read_index().get(suite.name)
    return (suite.perturbation is None and locked is not None
            and (locked.get("version"), locked.get("prompt_hash"))
            == (suite.version, suite.prompt_hash))


def _entry_problems(name: str, version: str, suite: str, suite_version: str, digest: str,
                    entry: dict[str, Any] | None) -> list[str]:
    """Why (perturbation `name` at `version`) on (suite at `suite_version`) giving prompts with
    hash `digest` disagrees with its lock `entry` ([] when it agrees)."""
    if entry is None:
        return [f"perturbation {name!r} is not in {lock_path()}"]
    if entry.get("version") != version:
        return [f"perturbation {name!r} is version {version}, the lock has {entry.get('version')}"]
    locked = entry.get("suites", {}).get(suite)
    if locked is None:
        return [f"suite {suite!r} is not locked for perturbation {name!r}"]
    if locked.get("suite_version") != suite_version:
        return [(f"perturbation {name!r} is locked on suite {suite!r} version "
                 f"{locked.get('suite_version')}, the suite is {suite_version}")]
    if locked.get("prompt_hash") != digest:
        return [(f"perturbation {name!r} v{version} on suite {suite!r} gives prompts with hash "
                 f"{digest[:16]}, the lock has {str(locked.get('prompt_hash'))[:16]}: its output "
                 "changed without a version bump")]
    return []


def check_applied(suite: Suite, pert: Perturbation, seed: int,
                  output: Suite, at_lock_seed: Callable[[], Suite]) -> None:
    """Raise PerturbationLockError when `pert`, applied to registered suite `suite` (giving
    `output` at `seed`; `at_lock_seed` gives its output at LOCK_SEED), disagrees with the lock.
    Suites that are not registered and perturbations that are not locked pass unchecked."""
    if not is_locked(pert) or not registered_suite(suite):
        return
    reference = output if seed == LOCK_SEED else at_lock_seed()
    problems = _entry_problems(pert.name, pert.version, suite.name, suite.version,
                               reference.prompt_hash, read_lock().get(pert.name))
    if problems:
        raise PerturbationLockError(f"{problems[0]}; {FIX}")


def lock_entry(name: str) -> dict[str, Any]:
    """The lock entry the code of perturbation `name` gives today, over every registered suite."""
    from relbench.suites.perturbations import apply_perturbation, get_perturbation
    from relbench.suites.registry import get_suite, list_suites

    pert = get_perturbation(name)
    suites = {}
    for s in list_suites():
        base = get_suite(s)
        out = apply_perturbation(base, name, LOCK_SEED)
        suites[s] = {"suite_version": base.version, "prompt_hash": out.prompt_hash}
    return {"version": pert.version, "suites": suites}


def locked_names() -> list[str]:
    """relbench's own perturbations (those the lock must cover, `is_locked`), in registration
    order."""
    from relbench.suites.perturbations import _REGISTRY

    return [n for n, p in _REGISTRY.items() if is_locked(p)]


def check_lock(name: str) -> list[str]:
    """Why the lock entry of perturbation `name` differs from what its code gives ([] if
    equal)."""
    entry, locked = lock_entry(name), read_lock().get(name)
    problems: list[str] = []
    for suite, now in entry["suites"].items():
        problems += _entry_problems(name, entry["version"], suite, now["suite_version"],
                                    now["prompt_hash"], locked)
        if locked is None or locked.get("version") != entry["version"]:
            break  # one line says it
    stale = sorted(set((locked or {}).get("suites", {})) - set(entry["suites"]))
    if stale:
        problems.append(f"the lock names suites that are not registered: {', '.join(stale)}")
    return problems


def write_lock(names: list[str] | None = None) -> list[str]:
    """Regenerate the lock entries of `names` (default: all of relbench's perturbations, and
    entries of perturbations that no longer exist are dropped); returns the names whose entry
    changed. Refuses (ValueError, nothing written) a perturbation whose output on a suite changed
    while both its version and the suite's version stayed the same."""
    lock, own = read_lock(), locked_names()
    foreign = [n for n in names or [] if n not in own]
    if foreign:
        raise ValueError(f"perturbation {foreign[0]!r} is not one of relbench's own; only those "
                         "are locked")
    new = dict(lock) if names else {}
    for name in names or own:
        entry, old = lock_entry(name), lock.get(name)
        if old is not None and old.get("version") == entry["version"]:
            for suite, now in entry["suites"].items():
                was = old.get("suites", {}).get(suite)
                if (was is not None and was.get("suite_version") == now["suite_version"]
                        and was.get("prompt_hash") != now["prompt_hash"]):
                    raise ValueError(
                        f"perturbation {name!r} would change its prompts on suite {suite!r} but "
                        f"its version {entry['version']} was not bumped; bump it in its "
                        "@perturbation(...) registration first")
        new[name] = entry
    changed = sorted(n for n in set(new) | set(lock) if new.get(n) != lock.get(n))
    if changed:
        data = {"schema_version": SCHEMA_VERSION, "seed": LOCK_SEED, "perturbations": new}
        lock_path().parent.mkdir(parents=True, exist_ok=True)
        lock_path().write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return changed


__all__ = [
    "LOCK_SEED",
    "PerturbationLockError",
    "check_applied",
    "check_lock",
    "is_locked",
    "lock_entry",
    "lock_path",
    "locked_names",
    "read_lock",
    "registered_suite",
    "write_lock",
]
