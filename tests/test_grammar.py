"""Prompt grammar: format/parse round trips, the paper's captions, roles and error messages."""

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relbench.scene import COLOR_RGB, RELATIONS, SHAPES, ObjectSpec, RelationSpec
from relbench.suites.grammar import (
    TEMPLATES,
    PromptParseError,
    analyse_prompt,
    format_prompt,
    parse_prompt,
    prompt_roles,
)
from relbench.suites.phrases import ALL_PHRASES, PHRASES
from relbench.suites.vocabulary import (
    COLOR_SYNONYMS,
    PARAPHRASES,
    PHRASE_TABLE,
    SHAPE_SYNONYMS,
    TYPO_CHOICES,
    TYPOS,
)

RB = RelationSpec(ObjectSpec("square", "red"), "above", ObjectSpec("circle", "blue"))

colors = st.sampled_from([None, *COLOR_RGB])
shapes = st.sampled_from([None, *SHAPES])
objects = st.tuples(shapes, colors).filter(lambda sc: sc != (None, None)).map(
    lambda sc: ObjectSpec(*sc)
)
all_phrases = [(r, p) for r, ps in {**PHRASES}.items() for p in ps] + [
    (r, p) for r, ps in PARAPHRASES.items() for p in ps
]


@settings(max_examples=400, deadline=None)
@given(objects, st.sampled_from(all_phrases), st.sampled_from(sorted(TEMPLATES)), objects)
def test_parse_inverts_format(subj, rel_phrase, template, ref):
    rel, phrase = rel_phrase
    spec = RelationSpec(subj, rel, ref)
    text = format_prompt(spec, phrase=phrase, template=template)
    parsed = analyse_prompt(text)
    assert parsed.spec == spec
    assert parsed.phrase == phrase
    assert parsed.template == template


def test_every_phrase_and_template_round_trips_for_every_training_pair():
    pairs = [(c1, c2) for c1, c2 in itertools.permutations(("red", "blue"))]
    for (rel, phrase), t, (c1, c2), (s1, s2) in itertools.product(
        ALL_PHRASES, TEMPLATES, pairs, itertools.permutations(SHAPES, 2)
    ):
        spec = RelationSpec(ObjectSpec(s1, c1), rel, ObjectSpec(s2, c2))
        assert parse_prompt(format_prompt(spec, phrase=phrase, template=t)) == spec


def test_templates_read_as_the_paper_writes_them():
    got = {t: format_prompt(RB, template=t) for t in TEMPLATES}
    assert got == {
        1: "red square is above blue circle",
        2: "red square above blue circle",
        3: "red square above the blue circle",
        4: "red square is above the blue circle",
        5: "the red square is above the blue circle",
        6: "above blue circle is red square",
    }


def test_reversed_order_keeps_the_subject():
    spec = parse_prompt("to the upper left of blue circle is red square")
    assert spec.subject == ObjectSpec("square", "red")
    assert spec.reference == ObjectSpec("circle", "blue")
    assert spec.relation == "upper_left"
    # mixed colour-only / shape-only objects: "is" separates them
    spec = parse_prompt("above red is circle")
    assert spec == RelationSpec(ObjectSpec("circle", None), "above", ObjectSpec(None, "red"))


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False))
def test_paper_training_captions_with_dropped_colours_parse(rnd: random.Random):
    s1, s2 = rnd.sample(SHAPES, 2)
    c1, c2 = rnd.sample(("red", "blue"), 2)
    rel, phrase = rnd.choice(ALL_PHRASES)
    k1, k2 = rnd.random() < 0.5, rnd.random() < 0.5
    o1 = f"{c1} {s1}" if k1 else s1
    o2 = f"{c2} {s2}" if k2 else s2
    spec = parse_prompt(f"{o1} is {phrase} {o2}")
    assert spec == RelationSpec(ObjectSpec(s1, c1 if k1 else None), rel, ObjectSpec(s2, c2 if k2 else None))


def test_the_papers_example_caption():
    spec = parse_prompt("square is to the upper left of blue circle")
    assert spec == RelationSpec(ObjectSpec("square"), "upper_left", ObjectSpec("circle", "blue"))


def test_colour_only_shape_only_and_unseen_colours():
    assert parse_prompt("red is above blue") == RelationSpec(
        ObjectSpec(None, "red"), "above", ObjectSpec(None, "blue")
    )
    assert parse_prompt("square is above circle") == RelationSpec(
        ObjectSpec("square"), "above", ObjectSpec("circle")
    )
    assert parse_prompt("green triangle is left of white square").subject.color == "green"
    assert format_prompt(RelationSpec(ObjectSpec(None, "red"), "left", ObjectSpec("circle"))) == (
        "red is to the left of circle"
    )


def test_synonyms_map_to_canonical_words():
    for color, syns in COLOR_SYNONYMS.items():
        for syn in syns:
            assert parse_prompt(f"{syn} square is above blue circle").subject.color == color
    for shape, syns in SHAPE_SYNONYMS.items():
        for syn in syns:
            assert parse_prompt(f"red {syn} is above blue circle").subject.shape == shape


def test_noise_filler_case_punctuation_and_function_word_typos():
    for text in (
        "The Red Square, is CLEARLY above a blue circle.",
        "  red   square\tis above-the blue circle !",
        "red square iss abvoe blue circle".replace("abvoe", "above"),
        "a picture of the red square which is above the blue circle",
        "red square teh above blue circle".replace("teh above", "is above"),
    ):
        assert parse_prompt(text) == RB, text
    # typos on "of", "and", "the" inside a relation phrase are forgiven
    spec = parse_prompt("red square is above adn to teh left fo blue circle")
    assert spec.relation == "upper_left"


def test_forgiven_typos_never_collide_with_vocabulary():
    from relbench.suites.vocabulary import KNOWN_WORDS

    assert not set(TYPOS) & KNOWN_WORDS
    assert all(TYPO_CHOICES[w] for w in TYPO_CHOICES)
    assert all(TYPOS[v] == w for w, vs in TYPO_CHOICES.items() for v in vs)


def test_phrases_match_longest_first():
    assert parse_prompt("red square is above and to the left of blue circle").relation == "upper_left"
    assert parse_prompt("red square is directly above blue circle").relation == "above"
    assert parse_prompt("red square is lower than blue circle").relation == "below"
    assert len(PHRASE_TABLE) == 22 + sum(len(v) for v in PARAPHRASES.values())


def test_roles_label_every_word():
    assert prompt_roles("the red square is to the left of blue circle") == [
        ("the", "filler"),
        ("red", "color1"),
        ("square", "shape1"),
        ("is", "filler"),
        ("to", "relation"),
        ("the", "relation"),
        ("left", "relation"),
        ("of", "relation"),
        ("blue", "color2"),
        ("circle", "shape2"),
    ]
    # reversed order: the subject's words are still role 1
    assert prompt_roles("above blue circle is red square") == [
        ("above", "relation"),
        ("blue", "color2"),
        ("circle", "shape2"),
        ("is", "filler"),
        ("red", "color1"),
        ("square", "shape1"),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("red squre above blue circle", "cannot parse 'red squre above blue circle': unknown word 'squre'"),
        ("red square near blue circle", "unknown word 'near'"),
        ("red square and blue circle", "no relation phrase found"),
        ("red square left blue circle", "no relation phrase found \\('left' not part of one\\)"),
        ("red square is left above blue circle", "word 'left' is not part of a relation phrase"),
        ("red square above blue circle below green", "more than one relation phrase"),
        ("red square above", "found 1 before and 0 after"),
        ("red square blue circle is above green", "found 2 before and 1 after"),
    ],
)
def test_errors_name_the_problem(text, message):
    with pytest.raises(PromptParseError, match=message) as e:
        parse_prompt(text)
    assert isinstance(e.value, ValueError)


def test_empty_prompt_and_typo_suggestion():
    for text in ("", "   ", " .,! "):
        with pytest.raises(PromptParseError, match="^empty prompt$"):
            parse_prompt(text)
    with pytest.raises(PromptParseError, match="did you mean 'square'"):
        parse_prompt("red squre above blue circle")


def test_format_rejects_bad_input():
    with pytest.raises(ValueError, match="means 'below'"):
        format_prompt(RB, phrase="below")
    with pytest.raises(ValueError, match="unknown relation phrase"):
        format_prompt(RB, phrase="near")
    with pytest.raises(ValueError, match="template"):
        format_prompt(RB, template=7)
    with pytest.raises(ValueError, match="neither a colour nor a shape"):
        format_prompt(RelationSpec(ObjectSpec(), "above", ObjectSpec("circle")))


def test_parsing_is_fast():
    import time

    texts = [format_prompt(RelationSpec(ObjectSpec(s, "red"), r, ObjectSpec("circle")), template=t)
             for s in SHAPES for r in RELATIONS for t in TEMPLATES]
    analyse_prompt.cache_clear()
    t0 = time.perf_counter()
    for _ in range(20):
        for text in texts:
            parse_prompt(text)
    rate = 20 * len(texts) / (time.perf_counter() - t0)
    assert rate > 3000, f"{rate:.0f} parses/s"
