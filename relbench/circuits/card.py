"""Circuit card: one model's circuit diagnostics on one page (`card.json` + `card.md`).

Built from three files the other `relbench circuits` commands write:

- `synopsis.json` (synopsis): the top relation head and top object head with their scores;
- `screen.json` (screen): the screening score and per-relation cosines of the top relation head,
  and the rank agreement between screening and synopsis (`screen.agreement`);
- `ablation.json` (ablate): Δ strict accuracy when the top relation head (and the top object
  head) is ablated, with its 95 % interval, and the random-head control.

Δ = ablated − baseline strict accuracy (negative: the ablation costs accuracy). For a head the
card takes its `zero_head` ablation over all steps when present, else its first ablation.

Verdict (computed, never typed): the top relation head is *causal beyond chance* when its Δ
is below every Δ of the random-head control and the upper end of its interval is below the
control's mean; *not special* when its Δ lies within the control's range; *helps when removed*
when its Δ is above the control's range. An exhaustive control (`ablate --random-control 1
--draws 18` on an 18-head model: every head once) compares the head with every other head and
gives its rank. Without an ablation of that head the card says so.

Sources: a card written to a directory publishes its three inputs beside it
(`inputs/synopsis.json`, `inputs/screen.json`, `inputs/ablation.json`, each a few kB) and
records each as a path relative to the card with its sha256, so `rebuild_cards` (`relbench
circuits rebuild-cards DIR`) rebuilds every card from what is published and refuses an input
whose hash changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from relbench.circuits.screen import SCREEN_FILE, agreement, read_screen

CARD_JSON, CARD_MD = "card.json", "card.md"
SYNOPSIS_JSON = "synopsis.json"
ABLATION_JSON = "ablation.json"
CARD_SCHEMA_VERSION = "2"  # 2: sources are {"file": relative path, "sha256"}, inputs published
INPUTS = "inputs"
SOURCE_FILES = {"synopsis": SYNOPSIS_JSON, "screen": SCREEN_FILE, "ablation": ABLATION_JSON}
PUBLISH_MAX_BYTES = 2_000_000  # larger inputs are recorded by hash only, not copied


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _sources(files: Mapping[str, Path], out_dir: Path | None) -> dict[str, dict[str, Any]]:
    """Each input as {"file", "sha256"}: copied to `out_dir/inputs/` and named relative to the
    card when written to `out_dir` (and small enough), else its file name only with
    "published": false, so no card records a path of the machine that made it."""
    out: dict[str, dict[str, Any]] = {}
    for role, file in files.items():
        digest = sha256_file(file)
        if out_dir is not None and file.stat().st_size <= PUBLISH_MAX_BYTES:
            dest = Path(out_dir) / INPUTS / SOURCE_FILES[role]
            dest.parent.mkdir(parents=True, exist_ok=True)
            if file.resolve() != dest.resolve():
                shutil.copyfile(file, dest)
            out[role] = {"file": f"{INPUTS}/{SOURCE_FILES[role]}", "sha256": digest}
        else:
            out[role] = {"file": file.name, "sha256": digest, "published": False}
    return out


def _resolve(path: Path | str, name: str, what: str, command: str) -> Path:
    """`path` itself or `path/name`; FileNotFoundError naming the missing file otherwise."""
    path = Path(path)
    file = path / name if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(
            f"{what} file {file} not found (write it with `relbench circuits {command}`)"
        )
    return file


def _read_json(file: Path, required: tuple[str, ...]) -> dict[str, Any]:
    try:
        doc = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{file} is not valid JSON: {e}") from None
    missing = [k for k in required if k not in doc]
    if missing:
        raise ValueError(f"{file} lacks field(s) {', '.join(missing)}")
    return doc


def head_name(layer: int, head: int) -> str:
    """The ablation target name of a head: L{layer}H{head}."""
    return f"L{layer}H{head}"


def _head_ablation(ablation: Mapping[str, Any], target: str) -> dict[str, Any] | None:
    """The head's own ablation; failing that, its draw in an exhaustive control (which ablates
    every head alone, so the head need not be named as a target too)."""
    rows = [a for a in ablation.get("ablations", []) if a.get("target") == target]
    if not rows and (ablation.get("random_control") or {}).get("exhaustive"):
        from relbench.circuits.ablate import control_rows

        rows = [a for a in control_rows(ablation) if a.get("heads") == [target]]
    preferred = [a for a in rows if a.get("kind") == "zero_head" and a.get("step_window") is None]
    pick = (preferred or rows or [None])[0]
    if pick is None:
        return None
    return {
        k: pick.get(k) for k in ("kind", "roles", "step_window", "strict", "delta", "delta_ci95")
    }


def _control(ablation: Mapping[str, Any], head: str | None = None) -> dict[str, Any] | None:
    """The random-head control's summary. An exhaustive control (every k-head set once) leaves
    out the set that is `head` alone, so the head is compared with every other head, and gives
    `head`'s rank among all single heads (1 = the largest drop)."""
    rc = ablation.get("random_control")
    if not rc or not rc.get("deltas"):
        return None
    from relbench.circuits.ablate import control_rows

    exhaustive = bool(rc.get("exhaustive"))
    rows = control_rows(ablation)
    if exhaustive and rows:
        others = [float(a["delta"]) for a in rows if a.get("heads") != [head]]
        own = [float(a["delta"]) for a in rows if a.get("heads") == [head]]
    else:
        others, own = [float(d) for d in rc["deltas"]], []
    if not others:
        return None
    out = {
        "k": rc.get("k"),
        "draws": len(others) if exhaustive else rc.get("draws", len(others)),
        "exhaustive": exhaustive,
        "mean": float(sum(others) / len(others)) if exhaustive else rc.get("mean"),
        "min": min(others),
        "max": max(others),
    }
    if exhaustive and own and rc.get("k") == 1:
        out["rank"] = 1 + sum(d < own[0] for d in others)
        out["of"] = len(others) + 1
    return out


def verdict(
    head: str, delta: Mapping[str, Any] | None, control: Mapping[str, Any] | None,
    metric: str = "strict accuracy",
) -> tuple[str, str]:
    """(label, sentence) for the top relation head's ablation against the random control;
    `metric` names what the ablation measured."""
    if delta is None or delta.get("delta") is None:
        return "untested", f"{head} was not ablated: its causal role is untested."
    d = float(delta["delta"])
    ci = delta.get("delta_ci95")
    ci_text = f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""
    if control is None:
        return "no_control", (
            f"ablating {head} changes {metric} by {d:+.3f}{ci_text}; "
            "no random-head control to compare with."
        )
    rng = f"{control['min']:+.3f} … {control['max']:+.3f}"
    if control.get("exhaustive"):
        draws = (f"the other {control['draws']} heads" if control["k"] == 1
                 else f"the {control['draws']} other sets of {control['k']} heads")
        if control.get("rank"):
            rng += f"; it ranks {control['rank']} of {control['of']}"
    else:
        draws = f"{control['draws']} random draws of {control['k']} head(s)"
    mean = control.get("mean")
    if mean is None:
        mean = (control["min"] + control["max"]) / 2
    if d < control["min"] and (ci is None or ci[1] < mean):
        return "causal", (
            f"{head} is a relation head beyond chance: ablating it changes {metric} "
            f"by {d:+.3f}{ci_text}, below all {draws} ({rng})."
        )
    if d > control["max"]:
        return "helps_when_removed", (
            f"ablating {head} raises {metric} by {d:+.3f}{ci_text}, "
            f"above all {draws} ({rng})."
        )
    return "not_special", (
        f"{head} is not special under ablation: its Δ {d:+.3f}{ci_text} lies within "
        f"the range of {draws} ({rng})."
    )


def build_card(
    model: str,
    synopsis_dir: Path | str,
    screen_path: Path | str | None,
    ablation_path: Path | str,
    out_dir: Path | str | None = None,
) -> dict[str, Any]:
    """The circuit card of `model` from its synopsis directory, screen.json and ablation.json
    (each a file or the directory holding it); written to `out_dir` (card.json + card.md,
    replaced atomically) when given. Missing inputs raise FileNotFoundError naming the file."""
    syn_file = _resolve(synopsis_dir, SYNOPSIS_JSON, "synopsis", "synopsis")
    # No screen (None): models screening cannot read (SD3, Flux) get a card without that section.
    scr_file = None if screen_path is None else _resolve(screen_path, SCREEN_FILE, "screen", "screen")
    abl_file = _resolve(ablation_path, ABLATION_JSON, "ablation", "ablate")
    syn = _read_json(syn_file, ("relation_heads", "object_heads"))
    scr = None if scr_file is None else read_screen(scr_file)
    abl = _read_json(abl_file, ("baseline", "ablations"))
    if not syn["relation_heads"] or not syn["object_heads"]:
        raise ValueError(f"{syn_file}: no ranked relation or object heads")
    if syn.get("n_bound") == 0:
        raise ValueError(
            f"{syn_file}: no image had both objects found (n_bound 0), so its head "
            "ranking is empty; rerun the synopsis with more prompts or a model that "
            "draws the objects"
        )

    rel, obj = syn["relation_heads"][0], syn["object_heads"][0]
    rel_name = rel.get("name") or head_name(rel["layer"], rel["head"])  # Flux: S0H1, ...
    obj_name = obj.get("name") or head_name(obj["layer"], obj["head"])
    key = (rel["layer"], rel["head"])
    screen_entry = None
    if scr is not None:
        ranked = [(t["layer"], t["head"]) for t in scr["top"]]
        if key not in ranked:
            raise ValueError(
                f"{scr_file} has no head {rel_name} (the synopsis's top relation head); "
                "were they made from the same model?"
            )
        scr_top = scr["top"][ranked.index(key)]
        screen_entry = {
            "score": scr_top["score"],
            "signed": scr_top["signed"],
            "specific": scr_top.get("specific"),
            "rank": ranked.index(key) + 1,
            "of": len(ranked),
            "cosines": {h["relation"]: h["cosine"] for h in scr["heads"]
                        if (h["layer"], h["head"]) == key},
        }
    control = _control(abl, rel_name)
    rel_abl, obj_abl = _head_ablation(abl, rel_name), _head_ablation(abl, obj_name)
    from relbench.circuits.ablate import METRICS

    metric = abl.get("metric", "correct")
    label, sentence = verdict(rel_name, rel_abl, control, METRICS.get(metric, metric))
    try:
        agree = agreement(scr, syn) if scr is not None else {"error": "no screen for this model"}
    except ValueError as e:
        agree = {"error": str(e)}
    card = {
        "schema_version": CARD_SCHEMA_VERSION,
        "model": model,
        "suite": abl.get("suite", syn.get("suite")),
        "n_prompts": abl.get("n_prompts"),
        "seeds": abl.get("seeds"),
        "steps": abl.get("steps"),
        "synopsis": {
            k: syn.get(k) for k in ("suite", "n_prompts", "seeds", "steps", "n_images", "n_bound")
        },
        "relation_head": {
            "name": rel_name,
            "layer": rel["layer"],
            "head": rel["head"],
            "score": rel["score"],
            "screen": screen_entry,
            "ablation": rel_abl,
        },
        "object_head": {
            "name": obj_name,
            "layer": obj["layer"],
            "head": obj["head"],
            "score": obj["score"],
            "ablation": obj_abl,
        },
        "metric": metric,
        "metric_label": METRICS.get(metric, metric),
        "baseline": abl["baseline"],
        "random_control": control,
        "screen_synopsis_agreement": agree,
        "verdict": {"label": label, "text": sentence},
        "sources": _sources(
            {k: v for k, v in (("synopsis", syn_file), ("screen", scr_file),
                               ("ablation", abl_file)) if v is not None},
            None if out_dir is None else Path(out_dir)),
    }
    if out_dir is not None:
        write_card(card, Path(out_dir))
    return card


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def card_markdown(card: Mapping[str, Any]) -> str:
    """The card as a short Markdown page."""
    from relbench.circuits.ablate import METRICS

    rel, obj = card["relation_head"], card["object_head"]
    base = card.get("baseline") or {}
    measure = METRICS.get(card.get("metric", "correct"), str(card.get("metric")))
    syn = card.get("synopsis") or {}

    def delta(a: Mapping[str, Any] | None) -> str:
        if not a or a.get("delta") is None:
            return "not ablated"
        ci = a.get("delta_ci95")
        return (
            f"{a['delta']:+.3f}"
            + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")
            + f" ({a['kind']})"
        )

    rc = card.get("random_control")
    control = (
        "none"
        if rc is None
        else ("every other head" if rc.get("exhaustive") and rc["k"] == 1 else f"{rc['draws']} draws of {rc['k']} head(s)")
        + f" ({rc['draws']}): mean {rc['mean']:+.3f}, range {rc['min']:+.3f} … {rc['max']:+.3f}"
        + (f"; the relation head ranks {rc['rank']} of {rc['of']}" if rc.get("rank") else "")
    )
    agree = card.get("screen_synopsis_agreement") or {}
    scr = rel.get("screen")
    cos = "" if scr is None else ", ".join(f"{r} {c:+.2f}" for r, c in scr["cosines"].items())
    lines = [
        f"# Circuit card: {card['model']}\n",
        (
            f"Suite `{card.get('suite')}`, {card.get('n_prompts')} prompts, seeds "
            f"{card.get('seeds')}, {card.get('steps')} steps. Generated by `relbench circuits "
            "card`; do not edit by hand.\n"
        ),
        f"**Verdict:** {card['verdict']['text']}\n",
        (
            f"Synopsis: {syn.get('n_bound')} of {syn.get('n_images')} images with both objects "
            f"found ({syn.get('n_prompts')} prompts of `{syn.get('suite')}`, "
            f"{syn.get('steps')} steps).\n"
        ),
        f"| | head | score | Δ {measure} when ablated [95% CI] |",
        "|---|---|---|---|",
        f"| top relation head | {rel['name']} | {rel['score']:.3f} | {delta(rel['ablation'])} |",
        f"| top object head | {obj['name']} | {obj['score']:.3f} | {delta(obj['ablation'])} |",
        "",
        f"- Baseline {measure}: {_fmt(base.get('strict'))}"
        + (f" [{base['ci95'][0]:.3f}, {base['ci95'][1]:.3f}]" if base.get("ci95") else ""),
        f"- Random-head control: {control}",
        (
            f"- Screening of {rel['name']}: not available for this model (see docs/circuits-mmdit.md)"
            if scr is None else
            f"- Screening of {rel['name']}: mean |cos| {scr['score']:.3f} (rank "
            f"{scr['rank']} of {scr['of']}), signed "
            f"{scr['signed']:+.3f}, relation-specific "
            f"{_fmt(scr.get('specific'), '+.3f')}; per relation: {cos}"
        ),
        f"- Screening vs synopsis (Spearman over {agree.get('n_heads', '?')} heads): "
        + (
            f"{agree['spearman']:+.3f}"
            if agree.get("spearman") is not None
            else agree.get("error", "undefined")
        ),
        "",
    ]
    return "\n".join(lines)


def write_card(card: Mapping[str, Any], out_dir: Path) -> Path:
    """Write card.json and card.md into `out_dir`, both or neither (staged, then renamed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = out_dir / f".card-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        (stage / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")
        (stage / CARD_MD).write_text(card_markdown(card))
        for name in (CARD_MD, CARD_JSON):  # card.json last: its presence means complete
            os.replace(stage / name, out_dir / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out_dir / CARD_JSON


def card_inputs(card_dir: Path | str) -> dict[str, Path]:
    """The published inputs of the card in `card_dir`, checked against the sha256 the card
    records; FileNotFoundError / ValueError name the input that is missing or changed."""
    card_dir = Path(card_dir)
    card = load_card(card_dir)
    sources = card.get("sources") or {}
    out = {}
    for role in SOURCE_FILES:
        src = sources.get(role)
        if role == "screen" and src is None:  # a card made without a screen (SD3, Flux)
            continue
        if not isinstance(src, Mapping) or src.get("published") is False or not src.get("file"):
            raise FileNotFoundError(
                f"{card_dir / CARD_JSON}: the {role} input is not published beside the card; "
                f"rebuild the card with relbench circuits card --out {card_dir}")
        file = card_dir / src["file"]
        if not file.is_file():
            raise FileNotFoundError(f"{card_dir / CARD_JSON}: {role} input {file} is missing")
        if sha256_file(file) != src.get("sha256"):
            raise ValueError(f"{file}: sha256 differs from the one {card_dir / CARD_JSON} "
                             "records; the input changed since the card was made")
        out[role] = file
    return out


def rebuild_cards(cards_dir: Path | str) -> list[Path]:
    """Rebuild every card under `cards_dir` (`<model>/card.json`) from its published inputs
    (hashes checked); the card files written."""
    written = []
    for card_json in sorted(Path(cards_dir).glob(f"*/{CARD_JSON}")):
        card = load_card(card_json)
        inputs = card_inputs(card_json.parent)
        build_card(card["model"], inputs["synopsis"], inputs.get("screen"), inputs["ablation"],
                   card_json.parent)
        written.append(card_json)
    return written


def load_card(path: Path | str) -> dict[str, Any]:
    """A card.json (the file, or a directory holding it)."""
    file = _resolve(path, CARD_JSON, "circuit card", "card")
    return _read_json(file, ("model", "relation_head", "object_head", "verdict"))


__all__ = [
    "CARD_JSON",
    "CARD_MD",
    "build_card",
    "card_inputs",
    "card_markdown",
    "head_name",
    "load_card",
    "rebuild_cards",
    "sha256_file",
    "verdict",
    "write_card",
]
