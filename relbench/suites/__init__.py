"""Prompt grammar (text ⇄ RelationSpec), versioned prompt suites and seeded perturbations."""

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
