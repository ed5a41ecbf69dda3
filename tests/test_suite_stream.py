"""A user's prompt file read as a stream (relbench.suites.stream): the same prompts and hash as
the held loader, bad rows named by line, memory flat in the number of rows, and `relbench eval`
on a streamed file (limit, perturbations, resume, a file changed mid-run)."""

import json
import tracemalloc
from pathlib import Path

import pytest

from relbench.runner import SAMPLES, EvalConfig, read_samples, run_eval
from relbench.scene import ObjectSpec, RelationSpec
from relbench.suites import load_suite_file, perturb_suite
from relbench.suites.grammar import analyse_prompt
from relbench.suites.stream import PromptFile, _parse_outcome

TEXTS = [
    "red square is above blue circle",
    "the blue triangle is to the left of the red square",
    "green circle lower than yellow square",
    "red circle is below and to the right of blue triangle",
    "above blue circle is red square",
]
SPEC = RelationSpec(ObjectSpec("circle", "green"), "left", ObjectSpec("square", "red")).to_dict()


def _write(path: Path, n: int, *, bad_at: int | None = None) -> Path:
    """`n` rows drawn from a few texts: ids, extra fields, explicit specs, blank lines; line
    `bad_at` (1-based) holds an unparseable prompt."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            if bad_at is not None and i + 1 == bad_at:
                f.write(json.dumps({"prompt": "red squre above blue circle"}) + "\n")
                continue
            row: dict = {"prompt": TEXTS[i % len(TEXTS)]}
            if i % 3:
                row["id"] = f"p-{i}"
            if i % 4 == 1:
                row["spec"] = SPEC
            if i % 5 == 2:
                row["tag"] = {"z": [1, 2.5, None], "a": "naïve ✓ \"quoted\""}
            f.write(json.dumps(row, ensure_ascii=i % 2 == 0) + "\n")
    return path


def _odd_rows(tmp_path: Path) -> Path:
    """Rows that exercise the canonical encoding: unicode ids, default ids, CRLF, blank lines,
    spec-only text, a spec with keys out of order, meta with nested unsorted keys."""
    rows = [
        {"prompt": "square is to the upper left of blue circle", "tag": "x"},
        {"prompt": "anything the model sees", "spec": SPEC},
        {"prompt": "the red square is above the blue circle", "id": "my-3 ✓ \"q\"\\"},
        {"spec": {"relation": "above", "reference": {"color": "blue", "shape": "circle"},
                  "subject": {"shape": "square", "color": "red"}},
         "prompt": "red square is above blue circle", "id": 7, "b": 1, "a": {"y": 2, "x": [1.5]}},
        {"prompt": "RED Square, is   above blue circle!", "relation": "ignored", "phrase": "x"},
    ]
    path = tmp_path / "odd.jsonl"
    path.write_bytes(b"\n".join(json.dumps(r, ensure_ascii=False).encode() for r in rows[:3])
                     + b"\r\n\r\n" + b"\n".join(json.dumps(r).encode() for r in rows[3:]) + b"\n\n")
    return path


# ------------------------------------------------------------------ same as the held loader


@pytest.mark.parametrize("make", [_odd_rows, lambda tmp: _write(tmp / "p.jsonl", 200)])
def test_stream_gives_the_loaders_prompts_and_hash(tmp_path, make):
    path = make(tmp_path)
    held, streamed = load_suite_file(path), PromptFile(path)
    assert list(streamed.prompts) == list(held.prompts)
    assert [p.meta for p in streamed.prompts] == [p.meta for p in held.prompts]
    assert streamed.prompt_hash == held.prompt_hash and len(streamed) == len(held)
    assert streamed.describe() == held.describe()
    assert streamed.to_suite().prompt_hash == held.prompt_hash


def test_perturbed_stream_equals_perturb_suite(tmp_path):
    path = _write(tmp_path / "p.jsonl", 120)
    held, streamed = load_suite_file(path), PromptFile(path)
    streamed.scan()
    for name in ("typos", "inverse", "template-3"):
        a, b = perturb_suite(held, name, seed=3), perturb_suite(streamed, name, seed=3)
        assert (b.name, b.version, b.description, b.perturbation, b.seed, len(b)) == (
            a.name, a.version, a.description, a.perturbation, a.seed, len(a))
        assert list(b.prompts) == list(a.prompts) and b.prompt_hash == a.prompt_hash
    chained = perturb_suite(perturb_suite(streamed, "inverse", 1), "typos", 1)
    assert chained.prompt_hash == perturb_suite(perturb_suite(held, "inverse", 1), "typos", 1).prompt_hash


def _mixed(tmp_path: Path, n: int = 3000, **kw) -> Path:
    """`_write` rows with some CRLF line ends and blank lines in between."""
    path = _write(tmp_path / "p.jsonl", n, **kw)
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"".join(line + (b"\r\n\n" if i % 97 == 5 else b"\r\n" if i % 7 == 0
                                      else b"\n") for i, line in enumerate(lines[:-1])))
    return path


def test_crlf_and_blank_lines_hash_as_the_loader_reads_them(tmp_path):
    path = _mixed(tmp_path)
    scan = PromptFile(path).scan()
    assert scan.prompt_hash == load_suite_file(path).prompt_hash
    assert scan.size == len(load_suite_file(path))


# ------------------------------------------------------------------ bad rows


def test_bad_line_deep_in_a_file_is_named(tmp_path):
    path = _write(tmp_path / "p.jsonl", 5000, bad_at=4321)
    with open(path, "a") as f:
        f.write("not json\n")  # a later bad line is not the one reported
    with pytest.raises(ValueError, match=r"p\.jsonl:4321: cannot parse .*'squre'"):
        PromptFile(path).scan()


def test_repeated_id_names_both_lines(tmp_path):
    path = _mixed(tmp_path)  # blank lines in between: line numbers count them
    rows = path.read_text().splitlines()
    first = next(k for k, line in enumerate(rows, start=1) if '"p-1000"' in line)
    with open(path, "a") as f:
        f.write(json.dumps({"prompt": TEXTS[0], "id": "p-1000"}) + "\n")
    with pytest.raises(ValueError, match=rf"p\.jsonl:{len(rows) + 1}: duplicate prompt id "
                                         rf"'p-1000' \(first on line {first}\)"):
        PromptFile(path).scan()


def test_a_lone_cr_file_is_read_as_text_mode_reads_it(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\r".join(json.dumps({"prompt": t}).encode() for t in TEXTS) + b"\r")
    scan = PromptFile(path).scan()
    assert scan.size == len(TEXTS) and scan.prompt_hash == load_suite_file(path).prompt_hash


def test_non_utf8_byte_is_named_by_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"prompt": "red square is above blue circle"}\n{"prompt": "red \xff"}\n')
    with pytest.raises(ValueError, match=r"p\.jsonl:2: not UTF-8 text"):
        PromptFile(path).scan()


def test_eval_refuses_a_bad_file_before_writing_anything(tmp_path):
    path = _write(tmp_path / "p.jsonl", 3000, bad_at=2999)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"p\.jsonl:2999:"):
        run_eval(EvalConfig("oracle", f"file:{path}", seeds=[0]), out, progress=False)
    assert not out.exists()


def test_a_file_changed_after_the_check_is_refused(tmp_path):
    path = _write(tmp_path / "p.jsonl", 20)
    f = PromptFile(path)
    f.scan()
    with open(path, "a") as fh:
        fh.write(json.dumps({"prompt": TEXTS[1]}) + "\n")
    with pytest.raises(ValueError, match="changed after relbench checked it"):
        next(iter(f.prompts))


# ------------------------------------------------------------------ memory


def _peak_bytes(path: Path) -> int:
    """Peak Python allocation while checking `path` and reading every prompt once."""
    _parse_outcome.cache_clear()
    analyse_prompt.cache_clear()
    tracemalloc.start()
    f = PromptFile(path)
    f.scan()
    for _ in f.prompts:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_memory_does_not_grow_with_rows(tmp_path):
    small = _peak_bytes(_write(tmp_path / "small.jsonl", 2_500))
    large = _peak_bytes(_write(tmp_path / "large.jsonl", 25_000))
    # the id check keeps 8 bytes a row (+ a sorted copy): 0.36 MB more for 22,500 more rows;
    # holding the prompts, as the loader does, costs ~1 kB a row (22 MB)
    assert large < small + 1_000_000, (small, large)


# ------------------------------------------------------------------ relbench eval on a stream


class _Counting:
    """The oracle, counting the prompts it was asked for."""

    name = "oracle"

    def __init__(self):
        from relbench.models import load_model

        self.model, self.prompts = load_model("oracle"), []

    def generate(self, requests):
        self.prompts += [r.prompt for r in requests]
        return self.model.generate(requests)

    def describe(self):
        return self.model.describe()


def test_eval_streams_with_limit_perturbation_and_resume(tmp_path):
    path = _write(tmp_path / "p.jsonl", 300)
    cfg = EvalConfig("oracle", f"file:{path}", perturbations=["typos"], seeds=[0, 1], limit=3,
                     batch_size=4)
    out = tmp_path / "run"
    model = _Counting()
    summary = run_eval(cfg, out, progress=False, model=model)
    held = load_suite_file(path)
    typos = perturb_suite(held, "typos", seed=0)
    run = summary["run"]
    assert run["prompt_hash"] == held.prompt_hash  # the whole file's hash, as before streaming
    assert run["perturbations"][0]["prompt_hash"] == typos.prompt_hash
    rows = read_samples(out / SAMPLES)
    expect = [(p.id, s) for suite in (held, typos) for p in suite.prompts[:3] for s in (0, 1)]
    assert [(r["prompt_id"], r["seed"]) for r in rows] == expect
    assert {r["source_id"] for r in rows} == {p.id for p in held.prompts[:3]}
    assert len(model.prompts) == 12 and summary["metrics"]["overall"] == 1.0

    again = _Counting()
    (out / "summary.json").unlink()
    resumed = run_eval(cfg, out, progress=False, model=again)
    assert again.prompts == [] and resumed["metrics"] == summary["metrics"]
    assert len(read_samples(out / SAMPLES)) == 12
