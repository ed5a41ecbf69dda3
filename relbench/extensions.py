"""Models, perturbations and scorers that other packages register, found through entry points.

A package extends relbench without touching it by declaring entry points in its own metadata,
e.g. in its pyproject.toml:

    [project.entry-points."relbench.models"]
    my-dit = "my_package.models:build"          # relbench eval --model my-dit (or my-dit:ARG)
    [project.entry-points."relbench.perturbations"]
    shout = "my_package.perturb:shout"          # relbench eval --perturb shout
    [project.entry-points."relbench.scorers"]
    owl = "my_package.scoring:OwlScorer"        # relbench score DIR --scorer owl

The entry-point tables are read once per process, and only when a name is not one of
relbench's own, so start-up never pays for them; an entry point's code is imported only when
its name is used. A run records the distribution and version of every extension it used
(`provenance`), so a number produced with a third-party part names it. Versions follow
relbench's one rule (`relbench.versions`): semantic versions, "7" or "1.0" read as 7.0.0 or
1.0.0, anything without a semantic form an error naming the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

MODELS = "relbench.models"
PERTURBATIONS = "relbench.perturbations"
SCORERS = "relbench.scorers"
GROUPS = (MODELS, PERTURBATIONS, SCORERS)


@dataclass(frozen=True)
class Extension:
    """One registered entry point: where it points and which distribution declared it."""

    group: str
    name: str
    value: str
    """`module:attribute`, as declared."""
    package: str | None
    version: str | None

    def load(self) -> Any:
        """Import the entry point's object; an import failure names the package to fix."""
        from importlib.metadata import EntryPoint

        try:
            return EntryPoint(self.name, self.value, self.group).load()
        except Exception as e:  # noqa: BLE001 - any failure inside a third-party import
            raise ImportError(
                f"{self.group} entry point {self.name!r} = {self.value!r} from package "
                f"{self.package or '?'} {self.version or ''} failed to load: "
                f"{type(e).__name__}: {e}"
            ) from e

    def provenance(self) -> dict[str, str | None]:
        """What a run log records about this extension: the package version as a semantic
        version (relbench.versions; a ValueError naming the package when it has none)."""
        from relbench.versions import extension_release

        version = None if self.version is None else extension_release(
            self.version, f"{self.group} entry point {self.name!r}", self.package)
        return {"group": self.group, "name": self.name, "entry_point": self.value,
                "package": self.package, "package_version": version}


@lru_cache(maxsize=None)
def _table(group: str) -> dict[str, tuple[Extension, ...]]:
    """name → the extensions registered under it in `group` (more than one is a conflict)."""
    from importlib.metadata import entry_points

    table: dict[str, list[Extension]] = {}
    for ep in entry_points(group=group):
        dist = getattr(ep, "dist", None)
        ext = Extension(group, ep.name, ep.value, dist.metadata["Name"] if dist else None,
                        dist.version if dist else None)
        if ext not in table.get(ep.name, []):  # one distribution seen twice on sys.path
            table.setdefault(ep.name, []).append(ext)
    return {name: tuple(exts) for name, exts in sorted(table.items())}


def names(group: str) -> list[str]:
    """Names registered in `group` by installed packages (none imported)."""
    return list(_table(_check_group(group)))


def find(group: str, name: str) -> Extension | None:
    """The extension registered as `name` in `group`, None if none is; a ValueError when two
    packages claim the name."""
    exts = _table(_check_group(group)).get(name, ())
    if len(exts) > 1:
        owners = ", ".join(f"{e.package} ({e.value})" for e in exts)
        raise ValueError(f"{group} name {name!r} is registered by more than one package: {owners}")
    return exts[0] if exts else None


def provenance(group: str, name: str) -> dict[str, str | None] | None:
    """`find(group, name).provenance()`, or None for a name no extension provides."""
    ext = find(group, name)
    return None if ext is None else ext.provenance()


def refresh() -> None:
    """Forget the entry-point tables (after installing a package into a running process)."""
    _table.cache_clear()


def _check_group(group: str) -> str:
    if group not in GROUPS:
        raise ValueError(f"unknown extension group {group!r}; choose from {', '.join(GROUPS)}")
    return group
