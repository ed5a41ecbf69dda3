"""The leaderboard's HTML page: one static file, sized for a 1280 px screen.

The page is rendered from the leaderboard document (`leaderboard.json`'s content) into the
template `relbench/templates/leaderboard.html`, with its stylesheet and sorting script inlined
so the page works opened from disk. Layout: one accuracy table per suite (per-relation accuracy
beside the overall one), a robustness table per perturbed suite (perturbations as rows, models
as columns), the circuit cards rendered in full, figures, sample grids, then provenance.
Model names that are paths are shortened; the full source shows on hover.
"""

from __future__ import annotations

import html
import json
import re
from importlib.resources import files
from string import Template
from typing import Any, Mapping, Sequence

from relbench.leaderboard import format_number
from relbench.scene import RELATIONS

# Column headers of the per-relation accuracies: arrows, the relation's name on hover.
RELATION_ARROWS = {
    "above": "↑", "below": "↓", "left": "←", "right": "→",
    "upper_left": "↖", "upper_right": "↗", "lower_left": "↙", "lower_right": "↘",
}
LABEL_MAX = 22  # characters of a model label before it is shortened
# What a card's ablation measured, for cards written before they named it (`metric_label`).
METRIC_LABELS = {"correct": "strict accuracy", "colour_layout": "colour-layout accuracy"}


def _asset(name: str) -> str:
    return (files("relbench") / "templates" / name).read_text(encoding="utf-8")


def short_label(name: str) -> str:
    """A model name short enough for a table cell: `diffusers:/a/b/pixart` → `diffusers:pixart`.

    Names with a `kind:` prefix keep the prefix and the last path component; anything still
    longer than LABEL_MAX characters is cut with an ellipsis. The page shows the full name on
    hover."""
    kind, sep, rest = name.partition(":")
    if sep and rest:
        last = [p for p in re.split(r"[\\/]", rest.rstrip("/\\")) if p]
        name = f"{kind}:{last[-1] if last else rest}"
    return name if len(name) <= LABEL_MAX else name[: LABEL_MAX - 1] + "…"


def code_text(text: str) -> str:
    """Escape `text` for HTML and render `backticked` spans as <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _signed(x: Any) -> str:
    return "n/a" if x is None else f"{x:+.3f}"


def _v(x: Any) -> str:
    """A cell's sort key (data-v)."""
    return "" if x is None else html.escape(str(x), quote=True)


def _shade(x: float | None) -> str:
    if x is None:
        return ""
    return " good" if x >= 0.8 else " mid" if x >= 0.5 else " bad"


def _source(run: Mapping[str, Any]) -> str:
    """The hover text of a model: its full name, arguments and checkpoint hash."""
    model = run.get("model") or {}
    text = str(model.get("name", "?"))
    if model.get("args"):
        text += " " + json.dumps(model["args"], sort_keys=True)
    if model.get("checkpoint_hash"):
        text += f" checkpoint sha256 {str(model['checkpoint_hash'])[:16]}"
    return text


def _model_cell(row: Mapping[str, Any]) -> str:
    name = str(row["model"])
    return (f"<td class='l model' data-v='{_v(name)}' title='{_v(_source(row.get('run') or {}))}'>"
            f"{html.escape(short_label(name))}</td>")


def _th(text: str, *, key: str = "", title: str = "", kind: str = "num", best: str = "high",
        left: bool = False) -> str:
    attrs = [f"data-type='{'text' if kind == 'text' else 'num'}'"]
    if key:
        attrs.append(f"data-key='{key}'")
    if best == "low":
        attrs.append("data-best='low'")
    if title:
        attrs.append(f"title='{_v(title)}'")
    if left:
        attrs.append("class='l'")
    return f"<th {' '.join(attrs)}>{text}</th>"


def _anchor(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _suite_table(suite: str, rows: Sequence[Mapping[str, Any]],
                 cards: Mapping[str, Any]) -> str:
    rels = [r for r in RELATIONS if any(r in (row.get("per_relation") or {}) for row in rows)]
    head = [
        _th("model", kind="text", left=True),
        _th("overall [95% CI]", key="overall",
            title="strict relation ∧ shapes ∧ colours ∧ unique binding; 95% bootstrap CI "
                  "over prompts"),
        _th("strict", key="relation_strict", title="strict relation accuracy"),
        _th("all seeds", key="all_seeds_correct",
            title="share of prompts correct on every seed (VISOR_n)"),
        *(_th(RELATION_ARROWS.get(r, r), title=f"accuracy on '{r}' prompts") for r in rels),
        _th("images", title="images scored"),
        _th("unscorable", best="low", title="images the scorer could not score"),
    ]
    if cards:
        head.append(_th("circuit card", kind="text", left=True,
                        title="top relation head and Δ accuracy when it is ablated"))
    body = []
    for row in rows:
        ci = (f"<span class='sub'>[{format_number(row['ci95_low'])}–{format_number(row['ci95_high'])}]</span>"
              if row.get("ci95_low") is not None else "")
        cells = [
            _model_cell(row),
            f"<td class='{_shade(row.get('overall')).strip()}' data-v='{_v(row.get('overall'))}'>"
            f"{format_number(row.get('overall')) or 'n/a'}{ci}</td>",
            f"<td data-v='{_v(row.get('relation_strict'))}'>{format_number(row.get('relation_strict'))}</td>",
            f"<td data-v='{_v(row.get('all_seeds_correct'))}'>"
            f"{format_number(row.get('all_seeds_correct'))}</td>",
        ]
        for r in rels:
            v = (row.get("per_relation") or {}).get(r)
            acc = v.get("accuracy") if isinstance(v, dict) else v
            cells.append(f"<td class='{_shade(acc).strip()}' data-v='{_v(acc)}'>{format_number(acc, 2)}</td>")
        cells += [f"<td data-v='{_v(row.get('n_scored'))}'>{format_number(row.get('n_scored'))}</td>",
                  f"<td data-v='{_v(row.get('n_unscorable'))}'>{format_number(row.get('n_unscorable'))}</td>"]
        if cards:
            c = cards.get(row["model"])
            cells.append("<td class='l' data-v=''></td>" if c is None else
                         f"<td class='l' data-v='{_v(c['relation_head'])}'>"
                         f"<a href='#card-{_anchor(str(row['model']))}'>"
                         f"{html.escape(_card_cell(c))}</a></td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table class='sortable'><thead><tr>{''.join(head)}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _card_cell(c: Mapping[str, Any]) -> str:
    delta = "not ablated" if c.get("delta") is None else f"Δ {float(c['delta']):+.3f}"
    return f"{c['relation_head']} {delta} ({str(c['verdict']).replace('_', ' ')})"


def _robustness_table(rows: Sequence[Mapping[str, Any]], perts: Sequence[str]) -> str:
    """Perturbations as rows, models as columns: accuracy, and below it the paired change
    against the same prompts' originals (minus the paired drop)."""
    models = [r for r in rows if any(r.get(f"accuracy:{p}") is not None for p in perts)]
    head = [_th("perturbation", kind="text", left=True)] + [
        _th(html.escape(short_label(str(r["model"]))), title=_source(r.get("run") or {}))
        for r in models]
    body = ["<tr><td class='l' data-v='original'><b>original prompts</b></td>" + "".join(
        f"<td data-v='{_v(r.get('overall'))}'>{format_number(r.get('overall'))}</td>" for r in models)
        + "</tr>"]
    for p in perts:
        cells = [f"<td class='l' data-v='{_v(p)}'><code>{html.escape(p)}</code></td>"]
        for r in models:
            acc, drop = r.get(f"accuracy:{p}"), r.get(f"drop:{p}")
            detail = (r.get("per_perturbation") or {}).get(p) or {}
            ci = detail.get("drop_ci95")
            tip = "" if ci is None else (
                f" title='paired drop {drop:.3f}, 95% CI [{ci[0]:.3f}, {ci[1]:.3f}]'")
            change = "" if drop is None else f"<span class='sub'>{0.0 - drop:+.3f}</span>"
            cells.append(f"<td class='{_shade(acc).strip()}' data-v='{_v(acc)}'{tip}>"
                         f"{format_number(acc)}{change}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table class='sortable'><thead><tr>{''.join(head)}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _provenance(doc: Mapping[str, Any]) -> str:
    e = html.escape
    suites = "".join(
        f"<tr><td class='l'><code>{e(n)}</code></td><td>{e(str(s.get('suite_version')))}</td>"
        f"<td class='l'><code>{e(str(s.get('prompt_hash'))[:16])}</code></td>"
        f"<td class='l'>{len(s.get('perturbations', {}))}</td></tr>"
        for n, s in doc["suites"].items())
    runs = "".join(
        f"<tr><td class='l'><code>{e(r['suite'])}</code></td>{_model_cell(r)}"
        f"<td class='l'><code>{e(str((r['run'].get('model') or {}).get('checkpoint_hash') or '')[:16])}"
        f"</code></td><td class='l'>{e(','.join(map(str, r['run'].get('seeds') or [])))}</td>"
        f"<td class='l'><code>{e(str(r['run'].get('git_commit') or '')[:10])}</code></td>"
        f"<td class='l'><a href='{e(r['run']['path'])}/summary.json'>{e(r['run']['path'])}</a>"
        "</td></tr>" for r in doc["rows"])
    return (
        "<h3>Suites</h3><table><thead><tr><th class='l'>suite</th><th>version</th>"
        "<th class='l'>prompts sha256</th><th class='l'>perturbations</th></tr></thead>"
        f"<tbody>{suites}</tbody></table>"
        "<h3>Runs</h3><table><thead><tr><th class='l'>suite</th><th class='l'>model</th>"
        "<th class='l'>checkpoint sha256</th><th class='l'>seeds</th><th class='l'>commit</th>"
        f"<th class='l'>run log</th></tr></thead><tbody>{runs}</tbody></table>")


def card_html(card: Mapping[str, Any]) -> str:
    """A circuit card (card.json's content) as an HTML fragment: the content of its card.md,
    with a heading, the verdict, the head table and the notes. Reads only the JSON, so building
    a board needs no torch."""
    e = html.escape
    rel, obj = card["relation_head"], card["object_head"]
    base = card.get("baseline") or {}
    measure = str(card.get("metric_label") or METRIC_LABELS.get(str(card.get("metric")),
                                                                card.get("metric")))
    syn = card.get("synopsis") or {}
    label = str(card["verdict"].get("label", ""))

    def delta(a: Mapping[str, Any] | None) -> str:
        if not a or a.get("delta") is None:
            return "not ablated"
        ci = a.get("delta_ci95")
        return f"{a['delta']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "") + (
            f" ({a['kind']})")

    rc = card.get("random_control")
    control = "none" if rc is None else (
        ("every other head" if rc.get("exhaustive") and rc["k"] == 1
         else f"{rc['draws']} draws of {rc['k']} head(s)")
        + f" ({rc['draws']}): mean {rc['mean']:+.3f}, range {rc['min']:+.3f} … {rc['max']:+.3f}"
        + (f"; the relation head ranks {rc['rank']} of {rc['of']}" if rc.get("rank") else ""))
    agree = card.get("screen_synopsis_agreement") or {}
    cos = ", ".join(f"{r} {c:+.2f}" for r, c in rel["screen"]["cosines"].items())
    spearman = (f"{agree['spearman']:+.3f}" if agree.get("spearman") is not None
                else agree.get("error", "undefined"))
    row = "<tr><td class='l'>{}</td><td class='l'>{}</td><td>{:.3f}</td><td>{}</td></tr>"
    return "\n".join([
        f"<h3>Circuit card: {e(str(card['model']))}</h3>",
        f"<p class='meta'>Suite <code>{e(str(card.get('suite')))}</code>, "
        f"{e(str(card.get('n_prompts')))} prompts, seeds {e(str(card.get('seeds')))}, "
        f"{e(str(card.get('steps')))} steps.</p>",
        f"<p class='verdict-{e(label)}'><b>Verdict:</b> {e(card['verdict']['text'])}</p>",
        f"<p>Synopsis: {e(str(syn.get('n_bound')))} of {e(str(syn.get('n_images')))} images "
        f"with both objects found ({e(str(syn.get('n_prompts')))} prompts of "
        f"<code>{e(str(syn.get('suite')))}</code>, seeds {e(str(syn.get('seeds')))}).</p>",
        "<table><thead><tr><th class='l'></th><th class='l'>head</th><th>score</th>"
        f"<th>Δ {e(measure)} when ablated [95% CI]</th></tr></thead><tbody>",
        row.format("top relation head", e(rel["name"]), rel["score"], e(delta(rel["ablation"]))),
        row.format("top object head", e(obj["name"]), obj["score"], e(delta(obj["ablation"]))),
        "</tbody></table><ul>",
        f"<li>Baseline {e(measure)}: {format_number(base.get('strict'))}"
        + (f" [{base['ci95'][0]:.3f}, {base['ci95'][1]:.3f}]" if base.get("ci95") else "")
        + "</li>",
        f"<li>Random-head control: {e(control)}</li>",
        f"<li>Screening of {e(rel['name'])}: mean |cos| {rel['screen']['score']:.3f} (rank "
        f"{rel['screen']['rank']} of {rel['screen']['of']}), signed "
        f"{rel['screen']['signed']:+.3f}, relation-specific "
        f"{_signed(rel['screen'].get('specific'))}; per relation: {e(cos)}</li>",
        f"<li>Screening vs synopsis (Spearman over {e(str(agree.get('n_heads', '?')))} heads): "
        f"{e(spearman)}</li>",
        "</ul>",
    ])


def render_page(
    doc: Mapping[str, Any], *, plots: Sequence[str] = (), grids: Mapping[str, str] | None = None,
    note: str | None = None, cards: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The page for leaderboard document `doc`. `plots` are image paths relative to the page,
    `grids` maps a caption to a sample-grid image, `cards` maps a model to its full circuit card
    (card.json); `note` is a sentence under the title (`backticks` become code)."""
    e = html.escape
    grids = grids or {}
    cards = cards or {}
    summaries = doc.get("circuit_cards", {})
    rows = doc["rows"]
    suites = list(dict.fromkeys(r["suite"] for r in rows))
    perts = [c.split(":", 1)[1] for c in doc.get("columns", []) if c.startswith("accuracy:")]
    perturbed = [s for s in suites
                 if any(r.get(f"accuracy:{p}") is not None for r in rows if r["suite"] == s
                        for p in perts)]
    sc = doc["scorer"]
    nav = [f"<a href='#suite-{_anchor(s)}'>{e(s)}</a>" for s in suites]
    nav += ["<a href='#robustness'>robustness</a>"] if perturbed else []
    nav += ["<a href='#cards'>circuit cards</a>"] if summaries else []
    nav += ["<a href='#figures'>figures</a>"] if plots else []
    nav += ["<a href='#samples'>samples</a>"] if grids else []
    nav += ["<a href='#provenance'>provenance</a>"]
    parts = [
        f"<h1>{e(doc['title'])}</h1>",
        "<p class='meta'>Generated by <code>relbench leaderboard build</code> from run logs; do "
        "not edit by hand." + (f" {code_text(note)}" if note else "") + "</p>",
        f"<p class='meta'>Scorer <code>{e(str(sc['scorer']))}</code> "
        f"v{e(str(sc['scorer_version']))}, config sha256 "
        f"<code>{e(str(sc['scorer_config_hash'])[:16])}</code>. <b>overall</b> = strict relation "
        "∧ shapes ∧ colours ∧ unique binding, with its 95% bootstrap interval over prompts. "
        "Click a column header to sort (best first, click again to reverse); hover a model for "
        "its full source.</p>",
        "<nav>" + " · ".join(nav) + "</nav>",
        "<h2 id='accuracy'>Accuracy by suite</h2>",
    ]
    for s in suites:
        info = doc["suites"].get(s, {})
        srows = [r for r in rows if r["suite"] == s]
        parts.append(f"<h3 id='suite-{_anchor(s)}'><code>{e(s)}</code></h3>")
        parts.append(f"<p class='meta'>version {e(str(info.get('suite_version')))}, prompts "
                     f"sha256 <code>{e(str(info.get('prompt_hash'))[:16])}</code>; arrows are "
                     "per-relation accuracy.</p>")
        # a card goes beside its model on the suite it was measured on (on every suite when
        # that suite is not on the board)
        here = {m: c for m, c in summaries.items()
                if c.get("suite") == s or c.get("suite") not in suites}
        parts.append(_suite_table(s, srows, here))
    if perturbed:
        parts.append("<h2 id='robustness'>Robustness</h2>")
        parts.append("<p class='meta'>Accuracy on each perturbed prompt set; below it the change "
                     "against the same prompts' originals with the same seeds (minus the paired "
                     "drop; hover for its 95% CI).</p>")
        for s in perturbed:
            srows = [r for r in rows if r["suite"] == s]
            parts.append(f"<h3><code>{e(s)}</code></h3>")
            parts.append(_robustness_table(srows, perts))
    if summaries:
        parts.append("<h2 id='cards'>Circuit cards</h2>")
        for model, summary in summaries.items():
            parts.append(f"<div class='card' id='card-{_anchor(model)}'>")
            if model in cards:
                parts.append(card_html(cards[model]))
            else:
                parts.append(f"<h3>{e(model)}</h3><p>{e(_card_cell(summary))}; "
                             f"{code_text(summary['verdict_text'])}</p>")
            parts.append(f"<p class='meta'>Source: <a href='{e(summary['card'])}'>"
                         f"{e(summary['card'])}</a></p></div>")
    if plots:
        parts.append("<h2 id='figures'>Figures</h2>")
        parts += [f"<figure><img src='{e(p)}' alt='{e(p[:-4].replace('_', ' '))}'>"
                  f"<figcaption>{e(p[:-4].replace('_', ' '))} (bars: 95% CI)</figcaption>"
                  "</figure>" for p in plots]
    if grids:
        parts.append("<h2 id='samples'>Samples</h2><p class='meta'>First seed of evenly spaced "
                     "prompts; titles green when correct, red with the found relation when "
                     "not.</p><div class='grids'>")
        parts += [f"<figure><img src='{e(v)}' alt='{e(k)}'><figcaption>{e(k)}</figcaption>"
                  "</figure>" for k, v in grids.items()]
        parts.append("</div>")
    parts.append("<h2 id='provenance'>Provenance</h2>")
    parts.append(_provenance(doc))
    return Template(_asset("leaderboard.html")).substitute(
        title=e(doc["title"]), css=_asset("leaderboard.css"), js=_asset("leaderboard.js"),
        body="\n".join(parts))


__all__ = ["RELATION_ARROWS", "card_html", "code_text", "render_page", "short_label"]
