"""Suite and SuitePrompt: a versioned, hashed list of prompts with their target specs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Iterable

from relbench.scene import RelationSpec


@dataclass(frozen=True)
class SuitePrompt:
    """One prompt of a suite and the spec an image of it must satisfy."""

    id: str
    """Stable id, "<suite>/<4-digit index>" ("core/0007", "core+typos/0007")."""
    prompt: str
    spec: RelationSpec
    relation: str
    phrase: str | None = None
    """The relation phrase the prompt uses (None when unknown, e.g. a user's spec-only row)."""
    template: int | None = None
    """Which grammar template (1-6) the text follows; None when it follows none exactly."""
    perturbation: str | None = None
    """None for an original prompt; else the perturbation(s) applied, joined by "+"."""
    source_id: str | None = None
    """Id of the unperturbed prompt this one pairs with (its own id for an original)."""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Extra fields carried from a user's prompt file (not part of the hash unless non-empty)."""

    def to_row(self) -> dict[str, Any]:
        """The prompt as a frozen-file row (`meta` only when it holds something)."""
        row: dict[str, Any] = {
            "id": self.id,
            "prompt": self.prompt,
            "spec": self.spec.to_dict(),
            "relation": self.relation,
            "phrase": self.phrase,
            "template": self.template,
            "perturbation": self.perturbation,
            "source_id": self.source_id,
        }
        if self.meta:
            row["meta"] = self.meta
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SuitePrompt:
        """Inverse of `to_row`; a ValueError names the field that is wrong."""
        missing = [k for k in ("id", "prompt", "spec") if k not in row]
        if missing:
            raise ValueError(f"prompt row lacks {', '.join(missing)}: {row!r}")
        spec = RelationSpec.from_dict(row["spec"])
        relation = row.get("relation", spec.relation)
        if relation != spec.relation:
            raise ValueError(f"row {row['id']!r}: relation {relation!r} != spec relation {spec.relation!r}")
        return cls(
            id=row["id"],
            prompt=row["prompt"],
            spec=spec,
            relation=relation,
            phrase=row.get("phrase"),
            template=row.get("template"),
            perturbation=row.get("perturbation"),
            source_id=row.get("source_id"),
            meta=dict(row.get("meta") or {}),
        )

    def with_text(self, prompt: str, **changes: Any) -> SuitePrompt:
        """A copy with new text (and any other fields changed)."""
        return replace(self, prompt=prompt, **changes)


def canonical_line(row: dict[str, Any]) -> str:
    """A row as one canonical JSON line (sorted keys, no spaces, UTF-8), newline included."""
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def rows_hash(rows: Iterable[dict[str, Any]]) -> str:
    """sha256 of the canonical JSON lines: equals `sha256sum` of a frozen file."""
    h = hashlib.sha256()
    for row in rows:
        h.update(canonical_line(row).encode("utf-8"))
    return h.hexdigest()


@dataclass(frozen=True)
class Suite:
    """A named, versioned list of prompts. `prompt_hash` pins its exact content."""

    name: str
    version: str
    """Semver of the suite definition; perturbed suites append "+<perturbation>.<version>"."""
    description: str
    prompts: tuple[SuitePrompt, ...]
    perturbation: str | None = None
    """For a perturbed suite: the perturbation(s) applied to its base suite."""
    seed: int | None = None
    """For a perturbed suite: the seed the perturbation drew with."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))
        ids = [p.id for p in self.prompts]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValueError(f"suite {self.name!r} has duplicate prompt id {dup!r}")

    def __len__(self) -> int:
        return len(self.prompts)

    def rows(self) -> list[dict[str, Any]]:
        return [p.to_row() for p in self.prompts]

    @cached_property
    def prompt_hash(self) -> str:
        """sha256 over the canonical JSON lines of the prompts (the frozen file's sha256)."""
        return rows_hash(self.rows())

    def describe(self) -> dict[str, Any]:
        """Name, version, size and hash, for listings and run logs."""
        return {
            "name": self.name,
            "version": self.version,
            "size": len(self.prompts),
            "prompt_hash": self.prompt_hash,
            "description": self.description,
        }


__all__ = ["Suite", "SuitePrompt", "canonical_line", "rows_hash"]
