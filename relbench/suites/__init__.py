"""Prompt grammar (text ⇄ RelationSpec), versioned prompt suites and seeded perturbations.

The names below load with their submodule on first use (PEP 562): parsing a prompt needs the
grammar, not the suite registry or the perturbations, and `relbench score` starts the sooner.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relbench.suites.grammar import (
        ROLES,
        TEMPLATES,
        ParsedPrompt,
        PromptParseError,
        analyse_prompt,
        format_prompt,
        parse_prompt,
        prompt_roles,
    )
    from relbench.suites.perturbations import (
        Perturbation,
        get_perturbation,
        list_perturbations,
        perturb_suite,
        perturbation,
    )
    from relbench.suites.phrases import ALL_PHRASES, CANONICAL_PHRASE, PHRASES
    from relbench.suites.registry import (
        SuiteDefinition,
        build_suite,
        check_frozen,
        get_suite,
        list_suites,
        load_suite_file,
        write_frozen,
    )
    from relbench.suites.suite import Suite, SuitePrompt
    from relbench.suites.vocabulary import GRAMMAR_VERSION, PARAPHRASES

_NAMES = {  # submodule -> the names it exports here
    "grammar": ("ROLES", "TEMPLATES", "ParsedPrompt", "PromptParseError", "analyse_prompt",
                "format_prompt", "parse_prompt", "prompt_roles"),
    "perturbations": ("Perturbation", "get_perturbation", "list_perturbations", "perturb_suite",
                      "perturbation"),
    "phrases": ("ALL_PHRASES", "CANONICAL_PHRASE", "PHRASES"),
    "registry": ("SuiteDefinition", "build_suite", "check_frozen", "get_suite", "list_suites",
                 "load_suite_file", "write_frozen"),
    "suite": ("Suite", "SuitePrompt"),
    "vocabulary": ("GRAMMAR_VERSION", "PARAPHRASES"),
}
_SOURCE = {name: module for module, names in _NAMES.items() for name in names}


def __getattr__(name: str) -> Any:
    source = _SOURCE.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{source}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "ALL_PHRASES",
    "CANONICAL_PHRASE",
    "GRAMMAR_VERSION",
    "PARAPHRASES",
    "PHRASES",
    "ROLES",
    "TEMPLATES",
    "ParsedPrompt",
    "Perturbation",
    "PromptParseError",
    "Suite",
    "SuiteDefinition",
    "SuitePrompt",
    "analyse_prompt",
    "build_suite",
    "check_frozen",
    "format_prompt",
    "get_perturbation",
    "get_suite",
    "list_perturbations",
    "list_suites",
    "load_suite_file",
    "parse_prompt",
    "perturb_suite",
    "perturbation",
    "prompt_roles",
    "write_frozen",
]
