"""Prompt perturbations: a registry of pure, seeded functions SuitePrompt → SuitePrompt.

Each returns the perturbed prompt with a target spec that is still correct: most keep the
meaning (and the spec); `inverse` says the same fact from the reference's side and re-derives
the spec. Structural perturbations (templates, paraphrase, inverse) rebuild the text from the
spec; word-level ones (synonyms, fillers, case/punctuation, typos) edit the words of the text,
so chain structural ones first. A prompt a perturbation cannot touch (no colour word for
`color-synonyms`) is kept as it is, still marked as perturbed, so pairs stay complete.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator, Sequence, TypeVar, Union

import numpy as np

from relbench.extensions import Extension
from relbench.scene import did_you_mean
from relbench.suites.grammar import analyse_prompt, format_prompt
from relbench.suites.phrases import CANONICAL_PHRASE
from relbench.suites.suite import Suite, SuitePrompt
from relbench.suites.vocabulary import (
    COLOR_SYNONYMS,
    COLOR_WORDS,
    PARAPHRASES,
    SHAPE_WORDS,
    SHAPE_SYNONYMS,
    TYPO_CHOICES,
    TYPO_WORDS,
)
from relbench.versions import check_release, extension_release, perturbed_release

Rng = Union[np.random.Generator, random.Random]
PerturbFn = Callable[[SuitePrompt, Rng], SuitePrompt]
T = TypeVar("T")


@dataclass(frozen=True)
class Perturbation:
    """A registered perturbation: name, semantic version (bump it when its output changes: the
    lock in prompts/frozen/perturbations.json refuses a changed output under the same version)
    and function."""

    name: str
    version: str
    description: str
    fn: PerturbFn
    extension: dict | None = None
    """The package and version that registered it (`relbench.perturbations` entry point);
    None for relbench's own."""

    def __call__(self, prompt: SuitePrompt, rng: Rng) -> SuitePrompt:
        out = self.fn(prompt, rng)
        tag = self.name if prompt.perturbation is None else f"{prompt.perturbation}+{self.name}"
        return replace(
            out,
            template=analyse_prompt(out.prompt).template,
            perturbation=tag,
            source_id=prompt.source_id or prompt.id,
        )


_REGISTRY: dict[str, Perturbation] = {}


def perturbation(name: str, version: str = "1.0.0") -> Callable[[PerturbFn], PerturbFn]:
    """Register `fn` as perturbation `name` at semantic version `version` (relbench.versions);
    its docstring's first line is the description."""
    check_release(version, f"perturbation {name!r}")

    def register(fn: PerturbFn) -> PerturbFn:
        if name in _REGISTRY:
            raise ValueError(f"perturbation {name!r} is already registered")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = Perturbation(name, version, doc[0] if doc else "", fn)
        return fn

    return register


def get_perturbation(name: str) -> Perturbation:
    """A registered perturbation, or one an installed package registers under the
    `relbench.perturbations` entry point (loaded on first use); ValueError with a suggestion for
    an unknown name."""
    if name not in _REGISTRY:
        from relbench import extensions

        ext = extensions.find(extensions.PERTURBATIONS, name)
        if ext is None:
            known = list_perturbations()
            raise ValueError(f"unknown perturbation {name!r}{did_you_mean(name, known)}")
        _REGISTRY[name] = _external(ext.load(), name, ext)
    return _REGISTRY[name]


def _external(obj: object, name: str, ext: Extension) -> Perturbation:
    """A third-party perturbation: a `Perturbation`, or a function (prompt, rng) -> prompt whose
    `version` attribute (default: its package's version) is bumped when its output changes.
    The version is read as a semantic version ("7" → 7.0.0; relbench.versions)."""
    what = f"perturbation {name!r}"
    if isinstance(obj, Perturbation):
        return replace(obj, name=name, version=extension_release(obj.version, what, ext.package),
                       extension=ext.provenance())
    if not callable(obj):
        raise ValueError(f"perturbation {name!r} from package {ext.package} is neither a "
                         "Perturbation nor a function (prompt, rng) -> prompt")
    doc = (obj.__doc__ or "").strip().splitlines()
    version = extension_release(str(getattr(obj, "version", None) or ext.version or "0.0.0"),
                                what, ext.package)
    return Perturbation(name, version, doc[0] if doc else "", obj, ext.provenance())


def list_perturbations() -> list[str]:
    """Names of the registered perturbations, in registration order, then those installed
    packages register (not loaded)."""
    from relbench import extensions

    installed = extensions.names(extensions.PERTURBATIONS)
    return list(_REGISTRY) + [n for n in installed if n not in _REGISTRY]


def perturb_suite(suite: Suite, name: str, seed: int = 0) -> Suite:
    """`suite` with perturbation `name` applied to every prompt, as suite "<suite>+<name>".

    Each prompt draws from its own generator seeded by (seed, name, prompt id), so a prompt's
    perturbation does not depend on the others. Ids become "<new name>/<index>"; `source_id`
    keeps pointing at the original prompt. A streamed suite (a `file:` suite in `relbench eval`,
    relbench.suites.stream) stays streamed: its `perturbed` applies the same per prompt. On a
    registered suite, one of relbench's own perturbations is checked against
    `prompts/frozen/perturbations.json` (relbench.suites.perturbation_lock): a changed output
    under the same version raises PerturbationLockError, a ValueError.
    """
    if not isinstance(suite, Suite):
        return suite.perturbed(name, seed)
    from relbench.suites.perturbation_lock import LOCK_SEED, check_applied

    out = apply_perturbation(suite, name, seed)
    check_applied(suite, get_perturbation(name), seed, out,
                  lambda: apply_perturbation(suite, name, LOCK_SEED))
    return out


def apply_perturbation(suite: Suite, name: str, seed: int = 0) -> Suite:
    """`perturb_suite` of an in-memory suite without the lock check (what the lock is built
    from)."""
    pert = get_perturbation(name)
    new_name = f"{suite.name}+{name}"
    prompts = list(perturbed_prompts(suite.prompts, name, seed, new_name))
    return Suite(
        name=new_name,
        version=perturbed_release(suite.version, name, pert.version),
        description=f"{suite.description} Perturbed by {name} v{pert.version} (seed {seed}).",
        prompts=tuple(prompts),
        perturbation=name if suite.perturbation is None else f"{suite.perturbation}+{name}",
        seed=seed,
    )


def perturbed_prompts(
    prompts: Iterable[SuitePrompt], name: str, seed: int, new_name: str
) -> Iterator[SuitePrompt]:
    """Perturbation `name` applied to each prompt in turn, ids "<new_name>/<index>" (the work of
    `perturb_suite`, one prompt at a time, so a streamed suite needs no list)."""
    pert = get_perturbation(name)
    for i, p in enumerate(prompts):
        rng = random.Random(f"{seed}:{name}:{p.id}")
        yield replace(pert(p, rng), id=f"{new_name}/{i:04d}")


# ---------------------------------------------------------------- rng helpers (both rng kinds)


def _choice(rng: Rng, items: Sequence[T]) -> T:
    if isinstance(rng, random.Random):
        return rng.choice(list(items))
    return items[int(rng.integers(len(items)))]


def _random(rng: Rng) -> float:
    return rng.random() if isinstance(rng, random.Random) else float(rng.random())


def _reformat(p: SuitePrompt, *, template: int | None = None, phrase: str | None = None) -> SuitePrompt:
    template = template or p.template or 1
    phrase = phrase or p.phrase or CANONICAL_PHRASE[p.spec.relation]
    text = format_prompt(p.spec, phrase=phrase, template=template)
    return replace(p, prompt=text, template=template, phrase=phrase)


def _words_roles(p: SuitePrompt) -> tuple[list[str], list[str]]:
    parsed = analyse_prompt(p.prompt)
    return list(parsed.words), list(parsed.roles)


# ---------------------------------------------------------------- structural


def _template_perturbation(k: int) -> PerturbFn:
    def fn(p: SuitePrompt, rng: Rng) -> SuitePrompt:
        return _reformat(p, template=k)

    fn.__doc__ = f"The paper's template {k}: " + {
        2: 'drop "is".',
        3: 'drop "is", add "the" before the second object.',
        4: 'keep "is", add "the" before the second object.',
        5: 'add "the" before both objects.',
        6: 'reversed order "{rel} {c2} {s2} is {c1} {s1}" (same subject).',
    }[k]
    return fn


for _k in range(2, 7):
    perturbation(f"template-{_k}")(_template_perturbation(_k))


@perturbation("reverse-order")
def reverse_order(p: SuitePrompt, rng: Rng) -> SuitePrompt:
    """Reversed word order (template 6): "above blue circle is red square"; subject unchanged."""
    return _reformat(p, template=6)


@perturbation("paraphrase")
def paraphrase(p: SuitePrompt, rng: Rng) -> SuitePrompt:
    """A relation phrase never used in training ("on top of", "northwest of"); same relation."""
    return _reformat(p, phrase=_choice(rng, PARAPHRASES[p.spec.relation]))


@perturbation("inverse")
def inverse(p: SuitePrompt, rng: Rng) -> SuitePrompt:
    """The same fact from the reference's side ("blue circle is below red square"); spec inverted."""
    spec = p.spec.inverse()
    text = format_prompt(spec, template=p.template or 1)
    return replace(
        p,
        prompt=text,
        spec=spec,
        relation=spec.relation,
        phrase=CANONICAL_PHRASE[spec.relation],
        template=p.template or 1,
    )


# ---------------------------------------------------------------- word-level


def _swap_words(p: SuitePrompt, rng: Rng, roles: tuple[str, ...], table: dict[str, tuple[str, ...]]) -> SuitePrompt:
    words, word_roles = _words_roles(p)
    out = []
    for w, r in zip(words, word_roles):
        canon = _canonical(w)
        syns = table.get(canon, ()) if r in roles else ()
        out.append(_choice(rng, syns) if syns else w)
    return replace(p, prompt=" ".join(out))


def _canonical(word: str) -> str:
    return COLOR_WORDS.get(word) or SHAPE_WORDS.get(word) or word


@perturbation("color-synonyms")
def color_synonyms(p: SuitePrompt, rng: Rng) -> SuitePrompt:
    """Colour words replaced by synonyms (red→crimson/scarlet/ruby, blue→navy/azure/cobalt, …)."""
    return _swap_words(p, rng, ("color1", "color2"), COLOR_SYNONYMS)


@perturbation("shape-synonyms")
def shape_synonyms(p: SuitePrompt, rng: Rng) -> SuitePrompt:
    """Shape words replaced by singular synonyms (circle→disk/disc, square→box; triangle kept)."""
    return _swap_words(p, rng, ("shape1", "shape2"), SHAPE_SYNONYMS)


_ARTICLES = ("the", "a")
_ADVERBS = ("clearly", "very clearly", "just")


@perturbation("filler-words")
def filler_words(p: SuitePrompt, rng: Rng) -> SuitePrompt:
    """Neutral filler inserted: an article before an object and/or an adverb before the relation."""
    words, roles = _words_roles(p)
    starts = [
        i
        for i, r in enumerate(roles)
        if r in ("color1", "shape1", "color2", "shape2")
        and (i == 0 or roles[i - 1] not in ("color1", "color2"))
        and (i == 0 or words[i - 1] not in ("the", "a", "an"))
    ]
    rel_start = roles.index("relation")
    slots: list[tuple[int, str]] = [(i, _choice(rng, _ARTICLES)) for i in starts]
    slots.append((rel_start, _choice(rng, _ADVERBS)))
    # at least one insertion; each further slot with probability 1/2
    first = int(_random(rng) * len(slots)) % len(slots)
    chosen = {first} | {k for k in range(len(slots)) if k != first and _random(rng) < 0.5}
    for k in sorted(chosen, key=lambda k: -slots[k][0]):  # right to left keeps indices valid
        i, filler = slots[k]
        words.insert(i, filler)
    return replace(p, prompt=" ".join(words))


@perturbation("case-punct")
def case_punct(p: SuitePrompt, rng: Rng) -> SuitePrompt:
    """Case changes, a trailing period or "!", a comma after a word, extra spaces."""
    words, roles = _words_roles(p)
    # a comma may follow an object (never inside the relation phrase)
    comma_after = [
        i
        for i in range(len(words) - 1)
        if roles[i] in ("shape1", "color1", "shape2", "color2") and roles[i + 1] in ("relation", "filler")
    ]
    case = _choice(rng, ("capitalize", "upper", "title", "lower"))
    if case == "capitalize":
        words[0] = words[0].capitalize()
    elif case == "upper":
        words = [w.upper() for w in words]
    elif case == "title":
        words = [w.capitalize() for w in words]
    if comma_after and _random(rng) < 0.5:
        words[_choice(rng, comma_after)] += ","
    seps = [_choice(rng, (" ", " ", "  ", "   ")) for _ in words[1:]]
    text = words[0] + "".join(s + w for s, w in zip(seps, words[1:]))
    text += _choice(rng, (".", "!", "", " ."))
    if _random(rng) < 0.3:
        text = "  " + text + " "
    return replace(p, prompt=text)


@perturbation("typos")
def typos(p: SuitePrompt, rng: Rng) -> SuitePrompt:
    """One or two typos on non-key words ("is", "the", "of", "and"); key words never change."""
    words, _ = _words_roles(p)
    where = [i for i, w in enumerate(words) if w in TYPO_WORDS]
    if not where:
        return p
    n = 1 if len(where) == 1 or _random(rng) < 0.5 else 2
    picked: list[int] = []
    for _ in range(n):
        i = _choice(rng, [j for j in where if j not in picked])
        picked.append(i)
        words[i] = _choice(rng, TYPO_CHOICES[words[i]])
    return replace(p, prompt=" ".join(words))


__all__ = [
    "Perturbation",
    "apply_perturbation",
    "get_perturbation",
    "list_perturbations",
    "perturb_suite",
    "perturbation",
    "perturbed_prompts",
]
