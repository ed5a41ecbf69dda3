"""A user's prompt file (`file:PROMPTS.jsonl`) read as a stream: memory flat in its length.

`relbench eval --suite file:PATH` never holds the file's prompts. `PromptFile.scan()` reads it
once before the first image, keeping no prompt: it checks every row as `load_suite_file` does
(a bad row is a ValueError "PATH:LINE: problem", so a bad line anywhere stops the run before
anything is generated or written), counts the prompts, finds repeated ids, and computes the
prompt hash incrementally (the same value `load_suite_file(PATH).prompt_hash` gives, so runs made
before streaming still resume and compare). Generation then reads the file again, a prompt at a
time. Perturbations apply per prompt (their generator is seeded by the prompt's own id), so a
perturbed file suite streams too (`PromptFile.perturbed`); each one costs one more pass over the
file for its hash.

Memory: a lean parse cache (at most 65,536 distinct texts, ~0.2 kB each; the grammar's own
cache is bypassed) and 8 bytes per row for the id check (1M rows: 8 MB). Time: the check before the first
image grows with the rows (benchmarks/suite_stream.py measures it).
"""

from __future__ import annotations

import json
import os
import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from hashlib import blake2b, sha256
from pathlib import Path
from typing import Any

from relbench.scene import RelationSpec
from relbench.suites.grammar import PromptParseError, analyse_prompt
from relbench.suites.suite import Suite, SuitePrompt, canonical_line

_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
"""`canonical_line` without its newline, built once (json.dumps with options builds one per call)."""
_encode_str = json.encoder.encode_basestring
"""How `_ENCODE` writes a string (ensure_ascii=False)."""
_Row = tuple[RelationSpec, "str | None", "int | None"]
"""What a row reads as: target spec, phrase, template (`read_user_prompt`)."""

USER_VERSION = "0.0.0"
"""The version of every user prompt file (its prompt hash is what pins it)."""

@dataclass(frozen=True)
class FileScan:
    """What one checking pass over a prompt file learns: its size in prompts, its prompt hash,
    and the file's (size, mtime) when read, to notice a file changed under a running eval."""

    size: int
    prompt_hash: str
    stat: tuple[int, int]


class PromptFile:
    """A user's jsonl prompt file as a suite that is read row by row, never held.

    Quacks like `Suite` where `relbench eval` uses one: `name`, `version`, `description`,
    `perturbation`, `seed`, `prompts` (a fresh iterator over the file each time), `len()`,
    `prompt_hash`, `describe()`. Rows are the ones `load_suite_file` reads: one JSON object per
    line with "prompt", optional "spec" and "id"; other fields go to `meta`; blank lines are
    skipped. `to_suite()` gives the held `Suite` (what `load_suite_file` returns).
    """

    perturbation: str | None = None
    seed: int | None = None

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"prompt file {self.path} does not exist")
        self.name = f"file:{self.path.name}"
        self.version = USER_VERSION
        self.description = f"user prompts from {self.path}"
        self._scan: FileScan | None = None

    @property
    def prompts(self) -> Iterator[SuitePrompt]:
        """The prompts, read from the file now (each access starts a new pass). A file changed
        since `scan()` is refused before its first prompt; see `relbench.suites.stream`."""
        self._check_unchanged()
        yield from _prompts_of(_read_rows(self.path, self.name))

    def __iter__(self) -> Iterator[SuitePrompt]:
        return self.prompts

    # ------------------------------------------------------------------ checking pass

    def scan(self) -> FileScan:
        """Check every row, count the prompts, refuse a repeated id, and hash the prompts as
        `Suite.prompt_hash` does; once (cached). Keeps no prompt: see the module docstring."""
        if self._scan is not None:
            return self._scan
        stat = _stat(self.path)
        n, canon, id_hashes = _check_rows(self.path, self.name)
        digest = canon.hexdigest()
        if n == 0:
            raise ValueError(f"{self.path}: no prompts")
        self._check_ids(id_hashes)
        if _stat(self.path) != stat:
            raise ValueError(f"{self.path} changed while relbench read it; run again when it is "
                             "written")
        self._scan = FileScan(n, digest, stat)
        return self._scan

    def _check_ids(self, id_hashes: array) -> None:
        """A ValueError naming both lines of the first repeated prompt id. Ids are compared by
        a 64-bit hash first (8 bytes per row); a second pass confirms a match exactly."""
        import numpy as np

        ordered = np.frombuffer(id_hashes, dtype=np.int64)
        ordered.sort()  # in place: no second copy
        repeated = ordered[1:][ordered[1:] == ordered[:-1]]
        if repeated.size == 0:
            return
        suspects = set(repeated.tolist())
        first_line: dict[str, int] = {}
        for lineno, pid, _, _ in _read_rows(self.path, self.name):
            if _id_hash(pid) not in suspects:
                continue
            if pid in first_line:
                raise ValueError(f"{self.path}:{lineno}: duplicate prompt id {pid!r} (first on "
                                 f"line {first_line[pid]})")
            first_line[pid] = lineno

    def _check_unchanged(self) -> None:
        if self._scan is not None and _stat(self.path) != self._scan.stat:
            raise ValueError(f"{self.path} changed after relbench checked it; the rows already "
                             "written are kept: restore the file and run the same command again "
                             "to resume, or use a new --out directory")

    def __len__(self) -> int:
        return self.scan().size

    @property
    def prompt_hash(self) -> str:
        """sha256 over the canonical prompt rows: `load_suite_file(path).prompt_hash`."""
        return self.scan().prompt_hash

    def describe(self) -> dict[str, Any]:
        """Name, version, size and hash, as `Suite.describe`."""
        return {"name": self.name, "version": self.version, "size": len(self),
                "prompt_hash": self.prompt_hash, "description": self.description}

    # ------------------------------------------------------------------ derived suites

    def perturbed(self, name: str, seed: int = 0) -> PerturbedPrompts:
        """This file with perturbation `name` applied prompt by prompt, as `perturb_suite` does."""
        return PerturbedPrompts(self, name, seed)

    def chain_hash(self, chain: tuple[tuple[str, int, str], ...]) -> str:
        """The prompt hash of this file perturbed by `chain`, (perturbation, seed, suite name)
        in order: one more pass over the file."""
        self.scan()
        self._check_unchanged()
        h = sha256()
        for p in _chained(self.prompts, chain):
            h.update(_prompt_line(p))
        return h.hexdigest()

    def to_suite(self) -> Suite:
        """The whole file as a held `Suite` (small files; what `load_suite_file` returns)."""
        self.scan()
        return Suite(name=self.name, version=self.version, description=self.description,
                     prompts=tuple(self.prompts))


class PerturbedPrompts:
    """A streamed suite with a perturbation applied per prompt: the same prompts, ids, name,
    version and hash as `perturb_suite` gives for the held suite."""

    def __init__(self, parent: PromptFile | PerturbedPrompts, name: str, seed: int) -> None:
        from relbench.suites.perturbations import perturb_suite

        self.parent, self.pert_name = parent, name
        self.root: PromptFile = parent if isinstance(parent, PromptFile) else parent.root
        head = perturb_suite(  # name, version and description as perturb_suite writes them
            Suite(parent.name, parent.version, parent.description, (), parent.perturbation,
                  parent.seed), name, seed)
        self.name, self.version, self.description = head.name, head.version, head.description
        self.perturbation, self.seed = head.perturbation, head.seed
        self.chain = (*getattr(parent, "chain", ()), (name, seed, self.name))
        """(perturbation, seed, suite name) from the file to this suite."""
        self._hash: str | None = None

    @property
    def prompts(self) -> Iterator[SuitePrompt]:
        from relbench.suites.perturbations import perturbed_prompts

        return perturbed_prompts(self.parent.prompts, self.pert_name, self.seed, self.name)

    def __iter__(self) -> Iterator[SuitePrompt]:
        return self.prompts

    def __len__(self) -> int:
        return len(self.parent)

    @property
    def prompt_hash(self) -> str:
        """sha256 over the canonical rows of the perturbed prompts (one pass over the file)."""
        if self._hash is None:
            self._hash = self.root.chain_hash(self.chain)
        return self._hash

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "size": len(self),
                "prompt_hash": self.prompt_hash, "description": self.description}

    def perturbed(self, name: str, seed: int = 0) -> PerturbedPrompts:
        return PerturbedPrompts(self, name, seed)


# ---------------------------------------------------------------------- reading and checking


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line, newlines as text mode reads them (\n, \r\n or
    \r); a byte that is not UTF-8 is a ValueError naming its line."""
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                yield lineno, _utf8(path, lineno, line)


def _utf8(path: Path, lineno: int, line: str) -> str:
    if not line.isascii():
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a surrogate stands for an undecodable byte
            raise ValueError(f"{path}:{lineno}: not UTF-8 text") from None
    return line


def _read_rows(path: Path, name: str) -> Iterator[tuple[int, str, dict[str, Any], _Row]]:
    """(line number, prompt id, row, what it reads as) per non-blank line of the file (default
    ids "<name>/<index>"); ValueError "PATH:LINE: ..." for a bad row, by the loader's rules
    (`read_user_prompt`)."""
    from relbench.suites.registry import _user_prompt, read_user_prompt

    for i, (lineno, line) in enumerate(_text_lines(path)):
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                _user_prompt(row, name, i)  # raises the loader's own message
            read = read_user_prompt(row["prompt"], row.get("spec"), _parse)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: invalid JSON: {e}") from e
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}:{lineno}: {e}") from e
        yield lineno, str(row.get("id") or f"{name}/{i:04d}"), row, read


def _check_rows(path: Path, name: str) -> tuple[int, Any, array]:
    """Check the file's rows: (prompts, sha256 of their canonical lines, 64-bit id hashes)."""
    from relbench.suites.registry import _ROW_FIELDS

    h = sha256()
    id_hashes = array("q")
    n = 0
    for lineno, pid, row, (spec, phrase, template) in _read_rows(path, name):
        meta = {k: v for k, v in row.items() if k not in _ROW_FIELDS}
        try:
            line = _canonical_row(pid, row["prompt"], spec, phrase, template, meta)
        except UnicodeEncodeError:
            raise ValueError(f"{path}:{lineno}: a lone surrogate escape (\\ud800-\\udfff) cannot "
                             "be written as UTF-8") from None
        h.update(line)
        id_hashes.append(_id_hash(pid))
        n += 1
    return n, h, id_hashes


def _prompts_of(rows: Iterable[tuple[int, str, dict[str, Any], _Row]]) -> Iterator[SuitePrompt]:
    """The prompts of `_read_rows` output (what `load_suite_file` makes of each row)."""
    from relbench.suites.registry import _ROW_FIELDS

    for _, pid, row, (spec, phrase, template) in rows:
        yield SuitePrompt(
            id=pid, prompt=row["prompt"], spec=spec, relation=spec.relation, phrase=phrase,
            template=template, perturbation=None, source_id=pid,
            meta={k: v for k, v in row.items() if k not in _ROW_FIELDS},
        )


def _chained(prompts: Iterable[SuitePrompt], chain: tuple[tuple[str, int, str], ...]
             ) -> Iterator[SuitePrompt]:
    """`prompts` perturbed by each (perturbation, seed, suite name) of `chain` in turn, as
    `perturb_suite` does."""
    from relbench.suites.perturbations import perturbed_prompts

    out: Iterable[SuitePrompt] = prompts
    for name, seed, suite_name in chain:
        out = perturbed_prompts(out, name, seed, suite_name)
    return iter(out)


def _id_hash(pid: str) -> int:
    """A 64-bit hash of a prompt id, the same in every process (`hash()` is salted per process)."""
    digest = blake2b(pid.encode("utf-8", errors="surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


# ---------------------------------------------------------------------- per-row work, cached


@dataclass(frozen=True, slots=True)
class _Parsed:
    """What the stream keeps of a parsed text (the grammar's ParsedPrompt also holds its words
    and roles: ~1.3 kB where this is ~0.1 kB)."""

    spec: RelationSpec
    phrase: str
    template: int | None


@lru_cache(maxsize=65536)
def _parse_outcome(text: str) -> _Parsed | PromptParseError:
    """A text's parse, or the error it gives (a spec row's free text is parsed once, too)."""
    try:
        p = analyse_prompt.__wrapped__(text)  # the grammar's own cache would hold ~1.3 kB a text
    except PromptParseError as e:
        return e
    return _Parsed(_SPECS.setdefault(p.spec, p.spec), sys.intern(p.phrase), p.template)


def _parse(text: str) -> _Parsed:
    """`analyse_prompt` for `read_user_prompt`, cached lean: a file repeats a few thousand texts."""
    out = _parse_outcome(text)
    if isinstance(out, PromptParseError):
        raise out.with_traceback(None)
    return out


_SPECS: dict[RelationSpec, RelationSpec] = {}
"""One object per distinct spec (at most colours² × shapes² × relations)."""


@lru_cache(maxsize=4096)
def _spec_json(spec: RelationSpec) -> str:
    return _ENCODE(spec.to_dict())


def _canonical_row(pid: str, text: str, spec: RelationSpec, phrase: str | None,
                   template: int | None, meta: dict[str, Any], *, relation: str | None = None,
                   perturbation: str | None = None, source_id: str | None = None) -> bytes:
    """`canonical_line(p.to_row())` as bytes, written field by field in sorted key order (id,
    meta, perturbation, phrase, prompt, relation, source_id, spec, template) without building
    the prompt; tests/test_suite_stream.py checks it equals the original."""
    key = _encode_str(pid)
    parts = ['{"id":', key]
    if meta:
        parts += [',"meta":', _ENCODE(meta)]
    parts += [
        ',"perturbation":', "null" if perturbation is None else _encode_str(perturbation),
        ',"phrase":', "null" if phrase is None else _encode_str(phrase),
        ',"prompt":', _encode_str(text),
        ',"relation":', _encode_str(spec.relation if relation is None else relation),
        ',"source_id":', key if source_id is None else _encode_str(source_id),
        ',"spec":', _spec_json(spec),
        ',"template":', _ENCODE(template), "}\n",
    ]
    return "".join(parts).encode("utf-8")


def _prompt_line(p: SuitePrompt) -> bytes:
    """`canonical_line(p.to_row())` as bytes, for any prompt (a perturbed one included)."""
    if p.source_id is None:  # never for a file's prompts; the plain way keeps it exact
        return canonical_line(p.to_row()).encode("utf-8")
    return _canonical_row(p.id, p.prompt, p.spec, p.phrase, p.template, p.meta,
                          relation=p.relation, perturbation=p.perturbation, source_id=p.source_id)


def _stat(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


__all__ = ["FileScan", "PerturbedPrompts", "PromptFile"]
