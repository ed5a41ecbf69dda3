"""The most an order-blind text encoder can score on a suite.

An encoder that ignores word order (relbench's `rte`: a fixed vector per word and no positions,
or any bag of words) gives the same conditioning to every prompt made of the same words, and the
DiT's cross-attention, which has no positions on the text side, cannot tell them apart either. So
a model over it draws every prompt of such a group from one image distribution, and its expected
number of correct images in the group is at most the number of the group's prompts that one image
can satisfy at once. On `core` each group holds four prompts ("red square is above blue circle",
"blue circle is above red square", "red circle is above blue square", "blue square is above red
circle"), and an image of two objects satisfies at most one of them: the bound is 0.25.

`order_blind_ceiling` computes this bound for two-object images, the only kind the training data
shows: for each group, the largest number of its prompts that are jointly satisfiable with one of
them (same objects, where both name an attribute, and the same relation, or the inverse relation
said from the other object's side), summed over groups and divided by the number of prompts. It is
an upper bound on strict relation accuracy in expectation; a finite run can exceed it by chance.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

from relbench.scene import INVERSE, ObjectSpec, RelationSpec
from relbench.suites.suite import Suite, SuitePrompt


def bag_of_words(prompt: str) -> tuple[str, ...]:
    """The sorted word tokens an order-blind encoder sees (the `rte` encoder's tokenisation)."""
    from relbench.dit.encoders import words

    return tuple(sorted(words(prompt)))


def order_blind_groups(prompts: Iterable[SuitePrompt]) -> list[list[SuitePrompt]]:
    """Prompts grouped by their bag of words, in order of first appearance."""
    groups: dict[tuple[str, ...], list[SuitePrompt]] = defaultdict(list)
    for p in prompts:
        groups[bag_of_words(p.prompt)].append(p)
    return list(groups.values())


def _agree(a: ObjectSpec, b: ObjectSpec) -> bool:
    """No attribute that both name differs."""
    return all(x is None or y is None or x == y for x, y in ((a.shape, b.shape), (a.color, b.color)))


def jointly_satisfiable(p: RelationSpec, q: RelationSpec) -> bool:
    """Whether one image of two objects can satisfy both specs (necessary condition: the same
    pair of objects in the same relation, said from either side)."""
    same_side = _agree(p.subject, q.subject) and _agree(p.reference, q.reference) and p.relation == q.relation
    other_side = (
        _agree(p.subject, q.reference) and _agree(p.reference, q.subject) and INVERSE[p.relation] == q.relation
    )
    return same_side or other_side


def order_blind_ceiling(suite: Suite | Iterable[SuitePrompt]) -> dict[str, Any]:
    """{"ceiling", "prompts", "groups", "largest_group"}: the bound on strict relation accuracy of
    any model whose conditioning ignores word order, for two-object images (module docstring)."""
    prompts = list(suite.prompts if isinstance(suite, Suite) else suite)
    if not prompts:
        raise ValueError("no prompts to bound")
    groups = order_blind_groups(prompts)
    best = 0
    for group in groups:
        best += max(sum(jointly_satisfiable(p.spec, q.spec) for q in group) for p in group)
    return {
        "ceiling": best / len(prompts),
        "prompts": len(prompts),
        "groups": len(groups),
        "largest_group": max(len(g) for g in groups),
    }
