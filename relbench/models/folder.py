"""`folder:<dir>`: images generated elsewhere, laid out as `relbench score` reads them.

DIR holds `metadata.jsonl` (one JSON object per line with `file`, relative to DIR, `prompt`, and
optionally `seed`) and the image files. A request (prompt, seed) is answered by the row whose
prompt text equals the request's exactly (outer whitespace ignored; case and punctuation count,
since perturbations such as `case_punct` differ only in those) and whose `seed` equals the seed.
Rows without a `seed` answer by position: the k-th such row of a prompt (file order, k from 0)
answers seed k, which matches `relbench eval --n-images N` (seeds 0..N-1); give explicit seeds
for anything else. A request without a matching row, or whose file is missing or corrupt, gets a
`NoImage` whose reason names the prompt, the seed and the file, so the row is unscorable and the
rest of the run goes on.

One image answering several requests (a suite whose prompts repeat, or two metadata rows naming
one file) warns once (`on_reuse="warn"`, the default) or makes every repeat unscorable
(`on_reuse="error"`, `--model-arg on_reuse=error`); `source_files` names the file that answered
each request, and the runner records it in each row as `source_file`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from relbench.models.api import GenerationRequest, NoImage
from relbench.models.registry import register_model

METADATA = "metadata.jsonl"
ON_REUSE = ("warn", "error")


class FolderModel:
    """Looks up each (prompt, seed) in DIR/metadata.jsonl and reads its image."""

    def __init__(self, root: str | Path, on_reuse: str = "warn") -> None:
        from relbench.scoring.folder import read_metadata

        if on_reuse not in ON_REUSE:
            raise ValueError(f"on_reuse must be one of {', '.join(ON_REUSE)}, got {on_reuse!r}")
        self.on_reuse = on_reuse
        self.source_files: dict[tuple[str, int], str] = {}
        """(prompt, seed) → the file that answered it."""
        self._answered: dict[str, tuple[str, int]] = {}
        """file → the first request it answered."""
        self._warned = False
        self.root = Path(root)
        self.name = f"folder:{root}"
        self.meta = self.root / METADATA
        if not self.meta.is_file():
            raise FileNotFoundError(
                f"{self.meta} not found: folder:DIR needs a {METADATA} with file and prompt per line"
            )
        self._index: dict[tuple[str, int], tuple[int, str]] = {}
        """(prompt, seed) → (metadata line, file)."""
        self._unseeded: dict[str, int] = {}
        self._problems: list[str] = []
        for line, row, err in read_metadata(self.meta):
            if row is None:
                self._problems.append(str(err))
                continue
            self._add(line, row)

    def _add(self, line: int, row: dict[str, Any]) -> None:
        prompt, file, seed = row.get("prompt"), row.get("file"), row.get("seed")
        where = f"{METADATA} line {line}"
        if not isinstance(prompt, str) or not isinstance(file, str) or not file:
            self._problems.append(f"{where}: needs a string 'prompt' and 'file'")
            return
        prompt = prompt.strip()
        if seed is None:
            seed = self._unseeded.get(prompt, 0)
            self._unseeded[prompt] = seed + 1
        elif isinstance(seed, bool) or not isinstance(seed, int):
            self._problems.append(f"{where}: seed {seed!r} is not an integer")
            return
        key = (prompt, seed)
        if key in self._index:
            first = self._index[key][0]
            self._problems.append(f"{where}: prompt {prompt!r} seed {seed} already given on line {first}")
            return
        self._index[key] = (line, file)

    @property
    def problems(self) -> list[str]:
        """Metadata lines that were skipped, with why (bad JSON, no file, duplicate seed)."""
        return list(self._problems)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[np.ndarray | NoImage]:
        return [self._image(req) for req in requests]

    def _image(self, req: GenerationRequest) -> np.ndarray | NoImage:
        from relbench.scoring import ImageReadError, read_image

        prompt = req.prompt.strip()
        hit = self._index.get((prompt, req.seed))
        if hit is None:
            n = self._unseeded.get(prompt, 0)
            hint = f" (its {n} rows without a seed answer seeds 0..{n - 1})" if n else ""
            return NoImage(f"no image for prompt {req.prompt!r} seed {req.seed} in {self.meta}{hint}")
        from relbench.safety import UnsafePathError, path_inside

        line, file = hit
        key = (prompt, req.seed)
        first = self._answered.setdefault(file, key)
        if key in self.source_files or first != key:
            what = (f"image {file} ({METADATA} line {line}) answers several requests: prompt "
                    f"{req.prompt!r} seed {req.seed} and prompt {first[0]!r} seed {first[1]}")
            if first == key:
                what = (f"image {file} ({METADATA} line {line}) answers prompt {req.prompt!r} seed "
                        f"{req.seed} more than once (the suite repeats this prompt)")
            if self.on_reuse == "error":
                return NoImage(f"{what}; on_reuse='error' refuses to score it twice")
            if not self._warned:
                import warnings

                self._warned = True
                warnings.warn(f"{what} (warned once; rows record source_file)", UserWarning,
                              stacklevel=2)
        self.source_files[key] = file
        try:
            return read_image(path_inside(self.root, file), name=file)
        except (ImageReadError, UnsafePathError) as e:
            return NoImage(f"{METADATA} line {line}: {e}")

    @property
    def sampling(self) -> dict[str, Any]:
        return {}  # images made elsewhere: their sampling is the folder's maker's record

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "args": {"root": str(self.root),
                     **({} if self.on_reuse == "warn" else {"on_reuse": self.on_reuse})},
            "checkpoint_hash": self.content_hash(),
            "skipped_metadata_lines": self.problems,
        }

    def content_hash(self) -> str:
        """sha256 over metadata.jsonl and every image it names (a missing file hashes as such), so
        a run log pins the exact images that were scored."""
        from relbench.runlog import file_hash
        from relbench.safety import UnsafePathError, path_inside

        h = hashlib.sha256(self.meta.read_bytes())
        for file in sorted({f for _, f in self._index.values()}):
            try:
                path = path_inside(self.root, file)
            except UnsafePathError:
                h.update(f"\0{file}\0refused".encode())  # never read outside the folder
                continue
            h.update(f"\0{file}\0{file_hash(path) if path.is_file() else 'missing'}".encode())
        return h.hexdigest()


@register_model("folder", prefix=True)
def _folder(root: str, on_reuse: str = "warn") -> FolderModel:
    return FolderModel(root, on_reuse)
