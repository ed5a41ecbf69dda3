"""Score a folder of images described by `metadata.jsonl` (the `relbench score` contract).

Each metadata line is a JSON object with `file` (relative to the folder) and `prompt` (free
text) or `spec` (a RelationSpec dict). Every input row is written back with its fields kept,
plus the `ScoreResult` fields. A row that cannot be scored — missing/corrupt/grayscale image,
empty or unparseable prompt, or a metadata line that is not a JSON object — gets
`correct: null` and an `error`; malformed lines become such rows carrying their `line`
number, so no input line is silently dropped and the rest still score.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from relbench.safety import check_spec, json_line, path_inside, str_inside
from relbench.scene import BACKGROUND_RGB, RelationSpec
from relbench.scoring.config import DetectorConfig
from relbench.scoring.detect import Detector, batched
from relbench.scoring.files import read_image

METADATA = "metadata.jsonl"
SCORES = "scores.jsonl"
RESULT_FIELDS = (
    "correct", "relation_strict", "relation_loose", "shape", "color", "exist_binding",
    "unique_binding", "dx", "dy", "found_relation", "reason", "detections",
)


def read_metadata(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, row or None, error or None) for every non-blank line of a metadata file.

    Streams the file (memory flat in its length); a line that is not UTF-8 or not JSON is that
    line's error, never the whole file's."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield n, None, (f"{path.name} line {n}: not UTF-8 (byte {raw[e.start]:#04x} "
                                f"at column {e.start + 1})")
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as e:
                msg = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply"
                yield n, None, f"{path.name} line {n}: invalid JSON ({msg})"
                continue
            if not isinstance(row, dict):
                kind = type(row).__name__
                yield n, None, f"{path.name} line {n}: expected a JSON object, got {kind}"
                continue
            yield n, row, None


def row_spec(row: dict[str, Any]) -> RelationSpec:
    """The spec of a metadata row: its explicit `spec`, else its parsed `prompt`."""
    if row.get("spec") is not None:
        if not isinstance(row["spec"], dict):
            raise ValueError(f"spec must be an object, got {row['spec']!r}")
        return check_spec(RelationSpec.from_dict(row["spec"]))
    prompt = row.get("prompt")
    if prompt is None:
        raise ValueError("row has neither 'prompt' nor 'spec'")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("empty prompt")
    from relbench.suites import parse_prompt  # lazy: suites is only needed for free text

    return parse_prompt(prompt)


def score_row(
    row: dict[str, Any], root: Path, detector: Detector, *, max_pixels: int | None = None
) -> dict[str, Any]:
    """The output row for one metadata row (never raises for a bad row: it gets an `error`).

    `file` must stay inside `root` (symlinks followed); images over `max_pixels` are refused
    from their header (see `relbench.scoring.files.MAX_PIXELS`)."""
    out, spec, image = _read_row(row, root, detector, max_pixels)
    if image is None:
        return out
    try:
        result = detector.score(image, spec)
    except Exception as e:  # noqa: BLE001 - one bad row (wrong types, decoder errors) ends no batch
        return _failed(out, e)
    return _with_result(out, result)


def _read_row(
    row: dict[str, Any], root: Path, detector: Detector, max_pixels: int | None
) -> tuple[dict[str, Any], RelationSpec | None, Any]:
    """(output row, spec, decoded image) of a metadata row, or (its error row, None, None)."""
    out = dict(row)
    try:
        spec = row_spec(row)
        if "spec" not in out:
            out["spec"] = spec.to_dict()
        file = row.get("file")
        if not isinstance(file, str) or not file:
            raise ValueError("row has no 'file'")
        path = str_inside(root, file)
        # A third-party Scorer (relbench.scoring.api) has no detector config: default background.
        bg = detector.config.background if isinstance(detector, Detector) else BACKGROUND_RGB
        return out, spec, read_image(path, bg, max_pixels=max_pixels, name=file)
    except Exception as e:  # noqa: BLE001 - one bad row (wrong types, decoder errors) ends no batch
        return _failed(out, e), None, None


def _with_result(out: dict[str, Any], result: Any) -> dict[str, Any]:
    """`out` with a scorer's `ScoreResult` fields."""
    try:
        out.update(result.to_dict())
    except Exception as e:  # noqa: BLE001 - a third-party scorer's malformed result
        return _failed(out, e)
    return out


def _failed(out: dict[str, Any], e: Exception) -> dict[str, Any]:
    """`out` as the error row of what scoring it raised."""
    if isinstance(e, ValueError):  # ImageReadError, PromptParseError, malformed specs
        return error_row(out, str(e))
    if isinstance(e, (MemoryError, RecursionError)):
        return error_row(out, "image too large or too complex to score")
    first = (str(e).strip().splitlines() or [""])[0][:200]
    return error_row(out, f"cannot score this row ({type(e).__name__}: {first})")


def error_row(row: dict[str, Any], error: str) -> dict[str, Any]:
    """`row` marked unscorable: every result field null (detections empty) plus `error`."""
    out = dict(row)
    out.update({f: None for f in RESULT_FIELDS})
    out["detections"] = []
    out["error"] = error
    return out


def score_folder(
    root: Path,
    detector: Detector,
    out_path: Path | None = None,
    *,
    workers: int = 1,
    progress: bool = True,
    max_pixels: int | None = None,
) -> dict[str, Any]:
    """Score `root/metadata.jsonl` into `out_path` (default `root/scores.jsonl`); returns the
    summary. Rows are streamed: read, scored and written a batch at a time
    (`relbench.scoring.detect.batched`), and flushed at least every `_FLUSH_EVERY_S` (memory
    flat in the number of rows; a killed run keeps what it wrote up to its last tenth of a
    second, all but its last batch); the output is rewritten from scratch on each run. Every
    failure of one row is that row's `error`, with its metadata line."""
    root = Path(root)
    meta = root / METADATA
    if not meta.is_file():
        raise FileNotFoundError(f"{meta} not found: a score folder needs a {METADATA}")
    path_inside(root, METADATA)  # a metadata.jsonl symlinked out of the folder is refused
    out_path = Path(out_path) if out_path is not None else root / SCORES
    if out_path.resolve() == meta.resolve():
        raise ValueError(f"--out {out_path} is the input {METADATA}; choose another file")
    if out_path.is_dir():
        raise ValueError(f"--out {out_path} is a directory; give a file name")
    tally = RowTally()
    if progress:
        from tqdm.auto import tqdm  # lazy: a quiet run does without it

        bar = tqdm(total=_count_lines(meta), unit="img", desc="score")
    else:
        bar = _NoBar()
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with open(out_path, "w", encoding="utf-8") as f:
            flushed = time.monotonic()
            for row in _scored(read_metadata(meta), root, detector, workers, max_pixels):
                f.write(json_line(row))
                if (now := time.monotonic()) - flushed >= _FLUSH_EVERY_S:
                    f.flush()
                    flushed = now
                tally.add(row)
                bar.update(1)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:  # disk full, read-only target, permission: a clear one-line error
        raise OSError(
            f"cannot write {out_path}: {e.strerror or e} ({tally.n} rows written)") from None
    finally:
        bar.close()
    summary = tally.summary()
    summary["detector"] = detector.describe()
    summary["scores"] = str(out_path)
    return summary


class _NoBar:
    """The progress bar of a quiet run."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


class RowTally:
    """`metrics.summarize` computed one row at a time, so a summary needs no list of rows."""

    def __init__(self) -> None:
        from relbench.scoring.metrics import METRIC_FIELDS

        self.fields = METRIC_FIELDS
        self.n = 0
        self.sums = {f: [0, 0] for f in ("correct", *METRIC_FIELDS)}  # field -> [true, seen]
        self.by_rel: dict[str, list[int]] = {}

    def add(self, row: dict[str, Any]) -> None:
        self.n += 1
        if row.get("correct") is None:
            return
        for f, acc in self.sums.items():
            v = row.get(f)
            if v is not None:
                acc[0] += bool(v)
                acc[1] += 1
        spec = row.get("spec")
        rel = row.get("relation") or (spec.get("relation") if isinstance(spec, dict) else None)
        if isinstance(rel, str):
            acc = self.by_rel.setdefault(rel, [0, 0])
            acc[0] += bool(row["correct"])
            acc[1] += 1

    def summary(self) -> dict[str, Any]:
        from relbench.scene import RELATIONS

        def mean(acc: list[int]) -> float | None:
            return acc[0] / acc[1] if acc[1] else None

        scored = self.sums["correct"][1]
        out: dict[str, Any] = {"n": self.n, "n_scored": scored, "n_unscorable": self.n - scored,
                               "overall": mean(self.sums["correct"])}
        for f in self.fields:
            out[f] = mean(self.sums[f])
        order = {r: i for i, r in enumerate(RELATIONS)}
        out["per_relation"] = {
            k: mean(v) for k, v in sorted(self.by_rel.items(), key=lambda kv: order.get(kv[0], 99))
        }
        return out


_FLUSH_EVERY_S = 0.1
"""Scored rows reach the output file at least this often (and at the end, or when the run is
interrupted): a killed run keeps every row but those of its last tenth of a second, without a
system call per row."""


def _count_lines(path: Path) -> int:
    """Non-blank lines of a file, for the progress bar (streamed)."""
    with open(path, "rb") as f:
        return sum(1 for raw in f if raw.strip())


_CHUNK = 256
"""Rows handed to the worker pool at a time: bounds memory whatever the file's length."""


def _scored(items, root: Path, detector: Detector, workers: int,
            max_pixels: int | None = None) -> Iterator[dict[str, Any]]:
    if workers <= 1:
        yield from _score_items(items, root, detector, max_pixels)
        return
    import itertools
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(
        workers, initializer=_init_worker, initargs=(detector.config.model_dump(mode="json"),)
    ) as pool:
        items = iter(items)
        while chunk := list(itertools.islice(items, _CHUNK)):
            parts = [(chunk[i : i + 16], str(root), max_pixels) for i in range(0, len(chunk), 16)]
            for rows in pool.imap(_worker_items, parts):
                yield from rows


def score_rows(
    rows: Iterable[dict[str, Any]], root: Path, detector: Detector, *,
    max_pixels: int | None = None,
) -> Iterator[dict[str, Any]]:
    """`score_row` of each row, in order, the rows read and their images scored a batch at a
    time (`relbench.scoring.detect.batched`): `Detector.score_batch`, or a scorer's `score`
    image by image when it has no `score_batch`."""
    return _score_items(((None, row, None) for row in rows), root, detector, max_pixels)


def _score_items(
    items, root: Path, detector: Detector, max_pixels: int | None = None
) -> Iterator[dict[str, Any]]:
    """The output row of each (line number, row, error) item, in order, read and scored in
    `batched` lists; a row's error names its metadata line when it has one."""
    entries = (_read_item(item, root, detector, max_pixels) for item in items)
    for batch in batched(entries, _image_of_entry):
        yield from _score_batch(batch, detector)


def _read_item(
    item, root: Path, detector: Detector, max_pixels: int | None
) -> tuple[int | None, dict[str, Any], RelationSpec | None, Any]:
    """(line number, output row, spec, image) of an item (`_read_row`; a malformed line's
    error row)."""
    n, row, err = item
    if row is None:
        return n, error_row({"line": n}, err), None, None
    return (n, *_read_row(row, root, detector, max_pixels))


def _image_of_entry(entry: tuple) -> Any:
    return entry[3]


def _score_batch(batch, detector: Detector) -> Iterator[dict[str, Any]]:
    """The rows of a batch of `_read_row` entries, their images scored together."""
    todo = [i for i, entry in enumerate(batch) if entry[3] is not None]
    images, specs = [batch[i][3] for i in todo], [batch[i][2] for i in todo]
    results: dict[int, Any] = dict(zip(todo, _score_many(detector, images, specs)))
    for i, (n, out, _, _) in enumerate(batch):
        if i in results:
            r = results[i]
            out = _failed(out, r) if isinstance(r, Exception) else _with_result(out, r)
        if n is not None and out.get("error") is not None and \
                not str(out["error"]).startswith(f"{METADATA} line "):
            out["error"] = f"{METADATA} line {n}: {out['error']}"
        yield out


def _score_many(detector, images: list, specs: list) -> list:
    """Each image's ScoreResult or the exception it raised: the scorer's own `score_batch` if
    it has one (the built-in detector does), else `score` image by image."""
    if not images:
        return []
    batch = getattr(detector, "score_batch", None)
    if callable(batch):
        try:
            out = list(batch(images, specs))
        except Exception as e:  # noqa: BLE001 - a scorer's batch that fails as a whole
            return [e] * len(images)
        if len(out) == len(images):
            return out
        bad = ValueError(f"the scorer's score_batch gave {len(out)} results for {len(images)} "
                         "images")
        return [bad] * len(images)
    out = []
    for image, spec in zip(images, specs):
        try:
            out.append(detector.score(image, spec))
        except Exception as e:  # noqa: BLE001 - one bad image fails alone
            out.append(e)
    return out


_WORKER_DETECTOR: Detector | None = None


def _init_worker(cfg: dict) -> None:
    global _WORKER_DETECTOR
    _WORKER_DETECTOR = Detector(DetectorConfig.model_validate(cfg))


def _worker_items(args) -> list[dict[str, Any]]:
    items, root, max_pixels = args
    assert _WORKER_DETECTOR is not None
    return list(_score_items(items, Path(root), _WORKER_DETECTOR, max_pixels))
