"""The suite registry: definitions in `prompts/suites.json`, frozen prompt lists in
`prompts/frozen/<suite>.jsonl`, and a lock `prompts/frozen/index.json` of their versions and
hashes.

A suite is generated from its definition (a grid of colour pairs × shape pairs × phrases in
one template) and must equal its frozen list: a code change that silently changes a suite is
caught (`relbench suites build` checks, `relbench suites build --write` regenerates, and
refuses to change a list whose version was not bumped).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from relbench.resources import prompts_dir
from relbench.scene import COLOR_RGB, RELATIONS, SHAPES, ObjectSpec, RelationSpec, did_you_mean
from relbench.suites.grammar import ParsedPrompt, PromptParseError, analyse_prompt, format_prompt
from relbench.suites.phrases import PHRASES
from relbench.suites.suite import Suite, SuitePrompt, canonical_line, rows_hash

DEFINITIONS_FILE = "suites.json"
FROZEN_DIR = "frozen"
INDEX_FILE = "index.json"
SCHEMA_VERSION = "1"
"""Schema number of prompts/suites.json (relbench.versions: a plain integer)."""

Pair = tuple[Union[str, None], Union[str, None]]


class SuiteDefinition(BaseModel):
    """How a suite is generated: every phrase × colour pair × shape pair, in that nesting order.

    `colors`: explicit (subject, reference) colour pairs, or "none" (colours unsaid).
    `shapes`: explicit pairs, "distinct" (the 6 ordered pairs of different shapes), "same"
    (circle/circle, …) or "none" (shapes unsaid). `phrases`: "canonical" (one per relation,
    8) or "all" (the 22 training phrases).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    """Semantic version MAJOR.MINOR.PATCH (relbench.versions); bump it to change the prompts."""
    description: str
    colors: Union[list[Pair], Literal["none"]]
    shapes: Union[list[Pair], Literal["distinct", "same", "none"]]
    phrases: Literal["canonical", "all"] = "canonical"
    template: int = Field(default=1, ge=1, le=6)

    @field_validator("version")
    @classmethod
    def _semantic_version(cls, v: str) -> str:
        from relbench.versions import check_release

        return check_release(v, "suite definition")

    @field_validator("colors")
    @classmethod
    def _known_colors(cls, v: Union[list[Pair], str]) -> Union[list[Pair], str]:
        for pair in v if isinstance(v, list) else []:
            for c in pair:
                if c is not None and c not in COLOR_RGB:
                    raise ValueError(f"unknown colour {c!r}{did_you_mean(c, COLOR_RGB)}")
        return v

    @field_validator("shapes")
    @classmethod
    def _known_shapes(cls, v: Union[list[Pair], str]) -> Union[list[Pair], str]:
        for pair in v if isinstance(v, list) else []:
            for s in pair:
                if s is not None and s not in SHAPES:
                    raise ValueError(f"unknown shape {s!r}{did_you_mean(s, SHAPES)}")
        return v

    def color_pairs(self) -> list[Pair]:
        return [(None, None)] if self.colors == "none" else [tuple(p) for p in self.colors]  # type: ignore[misc]

    def shape_pairs(self) -> list[Pair]:
        if self.shapes == "none":
            return [(None, None)]
        if self.shapes == "distinct":
            return [(a, b) for a in SHAPES for b in SHAPES if a != b]
        if self.shapes == "same":
            return [(s, s) for s in SHAPES]
        return [tuple(p) for p in self.shapes]  # type: ignore[misc]

    def phrase_list(self) -> list[tuple[str, str]]:
        """(relation, phrase) in RELATIONS order."""
        if self.phrases == "canonical":
            return [(rel, PHRASES[rel][0]) for rel in RELATIONS]
        return [(rel, p) for rel in RELATIONS for p in PHRASES[rel]]


class _DefinitionsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: str
    suites: list[SuiteDefinition]


def definitions_path() -> Path:
    return prompts_dir() / DEFINITIONS_FILE


def frozen_path(name: str) -> Path:
    return prompts_dir() / FROZEN_DIR / f"{name}.jsonl"


def index_path() -> Path:
    return prompts_dir() / FROZEN_DIR / INDEX_FILE


@lru_cache(maxsize=1)
def _definitions() -> dict[str, SuiteDefinition]:
    path = definitions_path()
    data = _DefinitionsFile.model_validate_json(path.read_text(encoding="utf-8"))
    if data.schema_version != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {data.schema_version!r}, expected {SCHEMA_VERSION!r}")
    out: dict[str, SuiteDefinition] = {}
    for d in data.suites:
        if d.name in out:
            raise ValueError(f"{path}: suite {d.name!r} defined twice")
        out[d.name] = d
    return out


def list_suites() -> list[str]:
    """Names of the registered suites, in definition order."""
    return list(_definitions())


def get_definition(name: str) -> SuiteDefinition:
    """The definition of a registered suite; ValueError with a suggestion for an unknown name."""
    defs = _definitions()
    if name not in defs:
        raise ValueError(f"unknown suite {name!r}{did_you_mean(name, defs)}")
    return defs[name]


def build_suite(name: str) -> Suite:
    """Generate a registered suite from its definition (what the frozen list must equal)."""
    d = get_definition(name)
    prompts = []
    for rel, phrase in d.phrase_list():
        for c1, c2 in d.color_pairs():
            for s1, s2 in d.shape_pairs():
                spec = RelationSpec(ObjectSpec(s1, c1), rel, ObjectSpec(s2, c2))
                pid = f"{name}/{len(prompts):04d}"
                prompts.append(
                    SuitePrompt(
                        id=pid,
                        prompt=format_prompt(spec, phrase=phrase, template=d.template),
                        spec=spec,
                        relation=rel,
                        phrase=phrase,
                        template=d.template,
                        perturbation=None,
                        source_id=pid,
                    )
                )
    return Suite(name=d.name, version=d.version, description=d.description, prompts=tuple(prompts))


def get_suite(name: str) -> Suite:
    """A registered suite, loaded from its frozen list and checked against the lock.

    "BASE+PERT" (e.g. "core+typos") gives `perturb_suite(get_suite(BASE), PERT, seed=0)`.
    """
    if "+" in name:
        from relbench.suites.perturbations import perturb_suite

        base, *perts = name.split("+")
        suite = get_suite(base)
        for p in perts:
            suite = perturb_suite(suite, p, seed=0)
        return suite
    return _load_frozen(name)


@lru_cache(maxsize=None)
def _load_frozen(name: str) -> Suite:
    d = get_definition(name)
    path = frozen_path(name)
    if not path.exists():
        raise FileNotFoundError(
            f"frozen prompt list {path} is missing; run `relbench suites build {name} --write`"
        )
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    locked = read_index().get(name)
    digest = rows_hash(rows)
    if locked is None or locked.get("version") != d.version or locked.get("prompt_hash") != digest:
        raise ValueError(
            f"frozen prompt list {path} does not match {index_path()} for suite {name!r} "
            f"version {d.version}; run `relbench suites build {name}` to see why"
        )
    prompts = tuple(SuitePrompt.from_row(r) for r in rows)
    return Suite(name=d.name, version=d.version, description=d.description, prompts=prompts)


def read_index() -> dict[str, dict]:
    """The lock: suite name → {version, size, prompt_hash} of its frozen list."""
    path = index_path()
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def check_frozen(name: str) -> list[str]:
    """Why the frozen list of `name` differs from what its definition generates ([] if equal)."""
    d = get_definition(name)
    built = build_suite(name)
    path = frozen_path(name)
    problems: list[str] = []
    if not path.exists():
        return [f"{path} is missing"]
    frozen = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    new = built.rows()
    if frozen != new:
        if len(frozen) != len(new):
            problems.append(f"{len(frozen)} frozen prompts, {len(new)} generated")
        diff = next((i for i, (a, b) in enumerate(zip(frozen, new)) if a != b), None)
        if diff is not None:
            problems.append(f"first difference at {new[diff]['id']}: frozen {frozen[diff]!r}, generated {new[diff]!r}")
    locked = read_index().get(name)
    if locked is None:
        problems.append(f"{name!r} is not in {index_path()}")
    elif locked.get("version") != d.version:
        problems.append(f"lock has version {locked.get('version')}, definition {d.version}")
    elif locked.get("prompt_hash") != built.prompt_hash:
        problems.append("lock hash differs from the generated prompts")
    return problems


def write_frozen(name: str) -> bool:
    """Regenerate the frozen list and lock entry of `name`; True if anything changed.

    Refuses (ValueError) to change the prompts of a suite whose version equals the locked one:
    a changed suite needs a new version in prompts/suites.json.
    """
    d = get_definition(name)
    built = build_suite(name)
    index = read_index()
    locked = index.get(name)
    if locked and locked.get("version") == d.version and locked.get("prompt_hash") != built.prompt_hash:
        raise ValueError(
            f"suite {name!r} would change but its version {d.version} was not bumped; "
            f"bump 'version' in {definitions_path()} first"
        )
    path = frozen_path(name)
    text = "".join(canonical_line(r) for r in built.rows())
    old = path.read_text(encoding="utf-8") if path.exists() else None
    entry = {"version": d.version, "size": len(built), "prompt_hash": built.prompt_hash}
    changed = old != text or locked != entry
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        index[name] = entry
        index_path().write_text(json.dumps(dict(sorted(index.items())), indent=2) + "\n", encoding="utf-8")
        _load_frozen.cache_clear()
    return changed


def load_suite_file(path: Path | str) -> Suite:
    """A user's own prompts: a jsonl file, one {"prompt": ..., optional "spec", "id"} per line.

    Rows without a spec are parsed; a bad line raises ValueError naming its line number.
    Other fields of a row are kept in `meta`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {path} does not exist")
    name = f"file:{path.name}"
    prompts: list[SuitePrompt] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                prompts.append(_user_prompt(json.loads(line), name, len(prompts)))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {e}") from e
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path}:{lineno}: {e}") from e
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return Suite(
        name=name, version="0.0.0", description=f"user prompts from {path}", prompts=tuple(prompts)
    )


_ROW_FIELDS = {"id", "prompt", "spec", "phrase", "template", "relation"}


def _user_prompt(row: object, name: str, i: int) -> SuitePrompt:
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    text = row.get("prompt")
    if not isinstance(text, str):
        raise ValueError("missing 'prompt' (a string)")
    spec, phrase, template = read_user_prompt(text, row.get("spec"))
    pid = str(row.get("id") or f"{name}/{i:04d}")
    return SuitePrompt(
        id=pid,
        prompt=text,
        spec=spec,
        relation=spec.relation,
        phrase=phrase,
        template=template,
        perturbation=None,
        source_id=pid,
        meta={k: v for k, v in row.items() if k not in _ROW_FIELDS},
    )


def read_user_prompt(
    text: str, spec: object, parse: Callable[[str], ParsedPrompt] = analyse_prompt
) -> tuple[RelationSpec, str | None, int | None]:
    """(target spec, phrase, template) of a user's row: its `spec` when given (unknown words
    fail here), else its text parsed; phrase and template when the text follows the grammar.
    `parse` lets a caller bring a leaner cache (relbench.suites.stream)."""
    parsed = None
    if spec is not None:
        from relbench.safety import check_spec

        if not isinstance(spec, dict):
            raise ValueError(f"spec must be an object, got {type(spec).__name__}")
        target = check_spec(RelationSpec.from_dict(spec))  # unknown words fail at load
    else:
        parsed = parse(text)  # PromptParseError is a ValueError
        target = parsed.spec
    if parsed is None:
        try:
            parsed = parse(text)
        except PromptParseError:
            pass
    phrase = parsed.phrase if parsed and parsed.spec.relation == target.relation else None
    return target, phrase, parsed.template if parsed and parsed.spec == target else None


__all__ = [
    "SuiteDefinition",
    "build_suite",
    "check_frozen",
    "get_definition",
    "get_suite",
    "list_suites",
    "load_suite_file",
    "read_index",
    "write_frozen",
]
