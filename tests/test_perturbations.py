"""Perturbations: every one keeps the prompt parseable with the right target spec, for any seed."""

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relbench.suites import (
    analyse_prompt,
    get_perturbation,
    get_suite,
    list_perturbations,
    parse_prompt,
    perturb_suite,
)
from relbench.suites.vocabulary import COLOR_WORDS, PARAPHRASES, SHAPE_WORDS, TYPO_WORDS, TYPOS
from relbench.scene import INVERSE

BASES = [get_suite(n) for n in ("profile", "ood-color-only", "ood-shape-only", "ood-unseen-colors")]
ALL_PROMPTS = [p for s in BASES for p in s.prompts]

EXPECTED = {
    "template-2", "template-3", "template-4", "template-5", "template-6", "reverse-order",
    "paraphrase", "inverse", "color-synonyms", "shape-synonyms", "filler-words", "case-punct",
    "typos",
}  # fmt: skip


def test_registry_holds_the_paper_and_extra_perturbations():
    assert set(list_perturbations()) == EXPECTED
    assert all(get_perturbation(n).version for n in EXPECTED)
    with pytest.raises(ValueError, match="did you mean 'typos'"):
        get_perturbation("typo")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(EXPECTED)),
    st.sampled_from(ALL_PROMPTS),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_perturbed_prompt_parses_to_its_target_spec(name, prompt, seed, use_numpy):
    rng = np.random.default_rng(seed) if use_numpy else random.Random(seed)
    out = get_perturbation(name)(prompt, rng)
    assert parse_prompt(out.prompt) == out.spec
    assert out.relation == out.spec.relation
    assert out.perturbation == name
    assert out.source_id == prompt.id
    if name == "inverse":
        assert out.spec == prompt.spec.inverse()
        assert out.relation == INVERSE[prompt.relation]
    else:
        assert out.spec == prompt.spec  # meaning kept; reversed order keeps the subject


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(ALL_PROMPTS), st.integers(0, 2**32 - 1))
def test_typos_touch_only_function_words(prompt, seed):
    out = get_perturbation("typos")(prompt, random.Random(seed))
    before, after = prompt.prompt.split(), out.prompt.split()
    assert len(before) == len(after)
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert all(a in TYPO_WORDS and TYPOS[b] == a for a, b in changed)
    if any(w in TYPO_WORDS for w in before):
        assert changed


def test_each_perturbation_changes_what_it_claims():
    core = get_suite("core")
    p = core.prompts[0]  # "red circle is above blue square"
    rng = lambda: random.Random(3)  # noqa: E731
    assert get_perturbation("template-3")(p, rng()).prompt == "red circle above the blue square"
    rev = get_perturbation("reverse-order")(p, rng())
    assert rev.prompt == "above blue square is red circle" and rev.template == 6
    para = get_perturbation("paraphrase")(p, rng())
    assert para.phrase in PARAPHRASES["above"] and para.phrase in para.prompt
    syn = get_perturbation("color-synonyms")(p, rng()).prompt.split()
    assert syn[0] not in ("red",) and COLOR_WORDS[syn[0]] == "red" and COLOR_WORDS[syn[4]] == "blue"
    shp = get_perturbation("shape-synonyms")(p, rng()).prompt.split()
    assert SHAPE_WORDS[shp[1]] == "circle" and shp[1] != "circle"
    fill = get_perturbation("filler-words")(p, rng()).prompt.split()
    assert len(fill) > 6
    inv = get_perturbation("inverse")(p, rng())
    assert inv.prompt == "blue square is below red circle"


def test_paper_colour_synonyms_are_available():
    seen = set()
    p = get_suite("core").prompts[0]
    for seed in range(40):
        seen.update(get_perturbation("color-synonyms")(p, random.Random(seed)).prompt.split())
    assert {"crimson", "navy"} <= seen


def test_perturb_suite_is_deterministic_paired_and_versioned():
    core = get_suite("core")
    a = perturb_suite(core, "typos", seed=7)
    b = perturb_suite(core, "typos", seed=7)
    c = perturb_suite(core, "typos", seed=8)
    assert a.prompt_hash == b.prompt_hash != c.prompt_hash
    assert a.name == "core+typos" and a.version == f"{core.version}+typos-1.0.0"
    assert len(a) == len(core)
    assert [p.source_id for p in a.prompts] == [p.id for p in core.prompts]
    assert a.prompts[7].id == "core+typos/0007"
    # a prompt's perturbation does not depend on the rest of the suite
    from relbench.suites import Suite

    sub = Suite("core", core.version, "", core.prompts[5:9])
    assert perturb_suite(sub, "typos", seed=7).prompts[2].prompt == a.prompts[7].prompt


def test_chained_perturbations_keep_the_original_pairing():
    core = get_suite("core")
    s = perturb_suite(perturb_suite(core, "template-5", seed=1), "case-punct", seed=1)
    assert s.name == "core+template-5+case-punct"
    assert s.prompts[3].source_id == "core/0003"
    assert s.prompts[3].perturbation == "template-5+case-punct"
    assert all(parse_prompt(p.prompt) == p.spec for p in s.prompts)
    assert get_suite("core+typos").prompt_hash == perturb_suite(core, "typos", seed=0).prompt_hash


def test_template_field_tracks_the_text():
    p = get_suite("core").prompts[0]
    for k in range(2, 7):
        out = get_perturbation(f"template-{k}")(p, random.Random(0))
        assert out.template == k == analyse_prompt(out.prompt).template
