"""Numbers in Markdown documents, generated from the leaderboard document (`leaderboard.json`).

A document marks each generated part as a region:

    <!-- board:headline -->
    ...generated text, rewritten by the board build...
    <!-- /board -->

or inline, for one number in a sentence: `<!-- board:value model=rtep-micro field=overall -->
0.924<!-- /board -->`. The name after `board:` picks a renderer (REGIONS) and `key=value`
words after it are its arguments. `render_regions` rewrites every region of a text from a
leaderboard document; `python leaderboards/build.py --board-only` applies it to README.md and
docs/*.md, and tests/test_docs_numbers.py fails when a file differs from what it would write.
So published numbers are never typed by hand, and change when the board changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from relbench.scene import CARDINAL_RELATIONS, DIAGONAL_RELATIONS

Doc = Mapping[str, Any]
REGION = re.compile(
    r"<!-- board:(?P<name>[a-z-]+)(?P<args>(?: [a-z_]+=[^ >]+)*) -->(?P<body>.*?)<!-- /board -->",
    re.S,
)
OPEN = re.compile(r"<!-- board:[a-z-]+(?: [a-z_]+=[^ >]+)* -->")


class RegionError(ValueError):
    """A region that cannot be rendered (unknown name, bad argument, missing row)."""


# ---------------------------------------------------------------- formatting


def _f(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _ci(lo: float | None, hi: float | None, sep: str = "–") -> str:
    return "" if lo is None or hi is None else f"[{lo:.3f}{sep}{hi:.3f}]"


def _acc_ci(row: Mapping[str, Any]) -> str:
    ci = _ci(row.get("ci95_low"), row.get("ci95_high"))
    return _f(row.get("overall")) + (f" {ci}" if ci else "")


def _table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
    return "\n".join(lines)


def _rows(doc: Doc, suite: str) -> list[Mapping[str, Any]]:
    rows = [r for r in doc["rows"] if r["suite"] == suite]
    if not rows:
        raise RegionError(f"the leaderboard has no rows for suite {suite!r}")
    return rows


def _row(doc: Doc, model: str, suite: str) -> Mapping[str, Any]:
    for r in doc["rows"]:
        if r["model"] == model and r["suite"] == suite:
            return r
    raise RegionError(f"the leaderboard has no row for model {model!r} on suite {suite!r}")


def _rel(row: Mapping[str, Any], relation: str) -> float | None:
    v = (row.get("per_relation") or {}).get(relation)
    return v.get("accuracy") if isinstance(v, Mapping) else v


def _models(doc: Doc, args: Mapping[str, str], suite: str) -> list[str]:
    if "models" in args:
        return args["models"].split(",")
    return [r["model"] for r in _rows(doc, suite)]


# ---------------------------------------------------------------- renderers


def headline(doc: Doc, args: Mapping[str, str]) -> str:
    """The main table: each model on one suite (default `core`), best first, with per-relation
    accuracy (diagonals as a range)."""
    suite = args.get("suite", "core")
    body = []
    for r in _rows(doc, suite):
        diag = [x for x in (_rel(r, d) for d in DIAGONAL_RELATIONS) if x is not None]
        card = [_f(_rel(r, c), 2) for c in CARDINAL_RELATIONS]
        body.append([f"`{r['model']}`", _acc_ci(r), _f(r.get("relation_strict")),
                     f"{min(diag):.2f}–{max(diag):.2f}" if diag else "n/a", " / ".join(card)])
    return _table(["model", "overall [95 % CI]", "strict relation", "diagonal relations",
                   "above / below / left / right"], body)


def models(doc: Doc, args: Mapping[str, str]) -> str:
    """Models on one suite with what the scorer found: shapes and colours."""
    suite = args.get("suite", "core")
    body = []
    for m in _models(doc, args, suite):
        r = _row(doc, m, suite)
        found = r.get("found") or {}
        body.append([f"`{m}`", _acc_ci(r), _f(r.get("relation_strict")),
                     _f(found.get("shape")), _f(found.get("color"))])
    return _table(["model", f"`{suite}` overall [95 % CI]", "strict relation", "shapes found",
                   "colours found"], body)


def suites(doc: Doc, args: Mapping[str, str]) -> str:
    """Overall accuracy [95 % CI] on every suite but `exclude` (default core), models as columns,
    with the order-blind bound of each suite (`relbench suites ceiling`)."""
    from relbench.suites import get_suite
    from relbench.suites.ceiling import order_blind_ceiling

    exclude = set(args.get("exclude", "core").split(","))
    names = [s for s in dict.fromkeys(r["suite"] for r in doc["rows"]) if s not in exclude]
    ms = args["models"].split(",") if "models" in args else list(
        dict.fromkeys(r["model"] for r in doc["rows"] if r["suite"] in names))
    body = []
    for s in names:
        cells = []
        for m in ms:
            try:
                cells.append(_acc_ci(_row(doc, m, s)))
            except RegionError:
                cells.append("")
        try:
            bound = f"{order_blind_ceiling(get_suite(s))['ceiling']:.2f}"
        except (KeyError, ValueError):
            bound = "n/a"
        body.append([f"`{s}`", *cells, bound])
    return _table(["suite", *[f"`{m}`" for m in ms], "order-blind bound"], body)


def robustness(doc: Doc, args: Mapping[str, str]) -> str:
    """Paired drop [95 % CI] per perturbation on one suite (default core), models as columns."""
    suite = args.get("suite", "core")
    ms = _models(doc, args, suite)
    rows = [_row(doc, m, suite) for m in ms]
    present = {p for r in rows for p in (r.get("per_perturbation") or {})}
    order = [c.split(":", 1)[1] for c in doc.get("columns", []) if c.startswith("accuracy:")]
    perts = [p for p in order if p in present] + sorted(present - set(order))  # board order
    body = []
    for p in perts:
        cells = []
        for r in rows:
            d = (r.get("per_perturbation") or {}).get(p) or {}
            ci = d.get("drop_ci95") or [None, None]
            cells.append(f"{_f(d.get('drop'))} {_ci(ci[0], ci[1], ', ')}".strip())
        body.append([f"`{p}`", *cells])
    return _table(["perturbation", *[f"`{r['model']}` ({_f(r.get('overall'))})" for r in rows]],
                  body)


def cards(doc: Doc, args: Mapping[str, str]) -> str:
    """The circuit cards on the board: top relation head, its ablation Δ against the control."""
    cs = doc.get("circuit_cards") or {}
    if not cs:
        return "_No circuit cards on the board._"
    body = []
    for m, c in cs.items():
        ci = c.get("delta_ci95") or [None, None]
        delta = "not ablated" if c.get("delta") is None else (
            f"{c['delta']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci[0] is not None else ""))
        ctl = c.get("control")
        body.append([
            f"`{m}`", f"{c['relation_head']} ({c['relation_score']:.3f})", delta,
            "" if not ctl else f"{ctl[0]:+.3f} … {ctl[1]:+.3f}",
            _f(c.get("screen_score")), f"{c['object_head']} ({c['object_score']:.3f})",
            str(c["verdict"]).replace("_", " ")])
    return _table(["model", "top relation head (synopsis score)", "Δ when ablated [95 % CI]",
                   "other heads' Δ", "screening (mean \\|cos\\|)", "top object head",
                   "verdict"], body)


def chance_example(doc: Doc, args: Mapping[str, str]) -> str:
    """What `relbench eval --model chance --suite core --perturb P` prints, from the board's run
    of the same model, suite, seeds and perturbation (the printout of relbench.cli.eval)."""
    model, suite, p = args.get("model", "chance"), args.get("suite", "core"), args.get(
        "perturb", "typos")
    r = _row(doc, model, suite)
    d = (r.get("per_perturbation") or {}).get(p)
    if d is None:
        raise RegionError(f"the board's {model} run on {suite} has no perturbation {p!r}")
    out = f"runs/{model}"
    ci, pci = _ci(r.get("ci95_low"), r.get("ci95_high")), d.get("ci95") or [None, None]
    return "\n".join([
        "```text",
        f"$ relbench eval --model {model} --suite {suite} --perturb {p} --out {out}",
        f"{model} on {suite}: overall {_f(r.get('overall'))} [95% CI {ci[1:-1]}] "
        f"({r.get('n_scored')} scored, {r.get('n_unscorable')} unscorable) → {out}",
        f"  {p}: overall {_f(d.get('accuracy'))} [95% CI {_ci(pci[0], pci[1])[1:-1]}]"
        + ("" if d.get("drop") is None else f", paired drop {d['drop']:+.3f}"),
        "```",
    ])


def value(doc: Doc, args: Mapping[str, str]) -> str:
    """One number: `field` of (`model`, `suite`): overall, overall_ci, relation_strict, a column
    such as accuracy:typos or drop:typos, relation:above, found:shape."""
    r = _row(doc, args.get("model", ""), args.get("suite", "core"))
    field = args.get("field", "overall")
    kind, _, name = field.partition(":")
    if field == "overall_ci":
        return _acc_ci(r)
    if kind == "relation":
        return _f(_rel(r, name), int(args.get("digits", 2)))
    if kind == "found":
        return _f((r.get("found") or {}).get(name))
    if field not in r:
        raise RegionError(f"unknown field {field!r} for board:value")
    v = r[field]
    return _f(v, int(args.get("digits", 3))) if isinstance(v, float) else str(v)


def scorer(doc: Doc, args: Mapping[str, str]) -> str:
    """The scorer every run on the board was scored with: name, version, config hash."""
    s = doc["scorer"]
    return f"`{s['scorer']}` v{s['scorer_version']} (config {str(s['scorer_config_hash'])[:12]})"


REGIONS: dict[str, Callable[[Doc, Mapping[str, str]], str]] = {
    "headline": headline, "models": models, "suites": suites, "robustness": robustness,
    "cards": cards, "chance-example": chance_example, "value": value, "scorer": scorer,
}


# ---------------------------------------------------------------- files


def _parse_args(text: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in text.split())


def render_regions(text: str, doc: Doc, source: str = "<text>") -> str:
    """`text` with every board region's body rewritten from `doc`. A block region (its opening
    comment alone on a line) gets its body on lines of its own; an inline one stays inline.
    RegionError names the file and line of an unknown or unrenderable region."""
    opened = len(OPEN.findall(text))

    def sub(m: re.Match) -> str:
        line = text.count("\n", 0, m.start()) + 1
        name = m["name"]
        if name not in REGIONS:
            raise RegionError(f"{source}:{line}: unknown board region {name!r} "
                              f"(known: {', '.join(sorted(REGIONS))})")
        try:
            body = REGIONS[name](doc, _parse_args(m["args"]))
        except (KeyError, ValueError) as e:
            raise RegionError(f"{source}:{line}: board:{name}: {e}") from None
        head = f"<!-- board:{name}{m['args']} -->"
        block = m["body"].startswith("\n") or "\n" in body
        return f"{head}\n{body}\n<!-- /board -->" if block else f"{head}{body}<!-- /board -->"

    out, n = REGION.subn(sub, text)
    if n != opened:
        raise RegionError(f"{source}: {opened - n} board region(s) not closed by <!-- /board -->")
    return out


def update_files(paths: Iterable[Path], doc: Doc) -> list[Path]:
    """Rewrite the board regions of each file from `doc`; the files that changed."""
    changed = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        new = render_regions(text, doc, str(path))
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def documents(root: Path) -> list[Path]:
    """The Markdown files whose regions the board build rewrites: README.md and docs/**/*.md."""
    return [p for p in [root / "README.md", *sorted((root / "docs").rglob("*.md"))] if p.is_file()]


def strip_regions(text: str) -> str:
    """`text` without the bodies of its board regions (what was typed by hand)."""
    return REGION.sub("", text)


__all__ = ["REGIONS", "RegionError", "documents", "render_regions", "strip_regions",
           "update_files"]
