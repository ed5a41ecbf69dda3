"""relbench's one version rule (relbench.versions): release versions of content are semantic
versions, schema and format numbers are plain integers, and a version read from an installed
package is normalised or refused with the package named."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

from relbench import extensions
from relbench.versions import (
    check_release,
    check_schema_number,
    extension_release,
    is_release,
    normalise_release,
    perturbed_release,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("version", ["0.0.0", "1.0.0", "2.1.0", "10.20.30", "1.0.0-rc1",
                                     "1.0.0+typos-1.0.0", "1.0.0-alpha.1+build.5"])
def test_semantic_versions_are_release_versions(version):
    assert is_release(version) and check_release(version, "x") == version


@pytest.mark.parametrize("version", ["1", "1.0", "2.0", "v1.0.0", "1.0.0.0", "01.0.0", "1.0.0+",
                                     "1.0.0+a+b", "", None, 1])
def test_anything_else_is_refused_naming_what(version):
    assert not is_release(version)
    with pytest.raises(ValueError, match=r"^perturbation 'p': version .* is not a semantic"):
        check_release(version, "perturbation 'p'")


@pytest.mark.parametrize("version, semver", [
    ("7", "7.0.0"), ("1.0", "1.0.0"), ("1.2.3", "1.2.3"), ("1.2.3-rc.1", "1.2.3-rc.1"),
    ("1.2rc1", "1.2.0-rc1"), ("1.0.0.dev3", "1.0.0-dev3"), ("1.2.post1", "1.2.0+post1"),
    ("0.1.dev4+g1234", "0.1.0-dev4+g1234"),
])
def test_package_style_versions_normalise_to_semver(version, semver):
    assert normalise_release(version) == semver and is_release(semver)


@pytest.mark.parametrize("version", ["1.2.3.4", "1!2.0", "two", "v-2", ""])
def test_versions_without_a_semantic_form_name_the_package(version):
    assert normalise_release(version) is None
    with pytest.raises(ValueError, match=r"scorer 'owl' from package owlpkg: version .* not a "
                                         r"semantic version"):
        extension_release(version, "scorer 'owl'", "owlpkg")


def test_schema_numbers_are_plain_integers():
    from relbench.circuits.card import CARD_SCHEMA_VERSION
    from relbench.leaderboard import LEADERBOARD_SCHEMA_VERSION
    from relbench.records import RECORDS_VERSION
    from relbench.runlog import RUN_SCHEMA_VERSION
    from relbench.suites.registry import SCHEMA_VERSION

    for what, number in [("run", RUN_SCHEMA_VERSION), ("records", RECORDS_VERSION),
                         ("leaderboard", LEADERBOARD_SCHEMA_VERSION),
                         ("card", CARD_SCHEMA_VERSION), ("suites.json", SCHEMA_VERSION)]:
        assert isinstance(number, str) and check_schema_number(number, what) == number
    for config in sorted((ROOT / "relbench" / "bundled").glob("*/config.json")):
        assert check_schema_number(json.loads(config.read_text())["version"], str(config)) == 1
    for bad in ("1.0", "1.0.0", "0", "v1", 0, True):
        with pytest.raises(ValueError, match="not a positive integer"):
            check_schema_number(bad, "x")


def test_the_package_and_grammar_have_semantic_versions():
    import relbench
    from relbench.suites import GRAMMAR_VERSION

    declared = re.search(r'^version = "(.*)"$', (ROOT / "pyproject.toml").read_text(),
                         re.MULTILINE)
    assert declared and is_release(declared.group(1))
    assert is_release(relbench.__version__) and is_release(GRAMMAR_VERSION)


def test_suites_and_their_lock_have_semantic_versions():
    from relbench.suites import get_suite, list_suites
    from relbench.suites.registry import read_index

    for name in list_suites():
        assert is_release(get_suite(name).version), name
    assert all(is_release(entry["version"]) for entry in read_index().values())


def test_a_suite_definition_with_a_short_version_is_refused():
    from pydantic import ValidationError

    from relbench.suites import SuiteDefinition

    with pytest.raises(ValidationError, match="version '1.0' is not a semantic version"):
        SuiteDefinition(name="x", version="1.0", description="", colors="none", shapes="none")


def test_relbench_perturbations_are_semantic_and_refuse_short_versions():
    from relbench.suites import get_perturbation, perturbation
    from relbench.suites.perturbations import _REGISTRY

    for name in list(_REGISTRY):
        assert get_perturbation(name).version == "1.0.0", name
    with pytest.raises(ValueError, match="perturbation 'loud': version '1' is not a semantic"):
        perturbation("loud", version="1")
    assert "loud" not in _REGISTRY


def test_perturbed_suite_versions_are_semantic_with_the_perturbation_as_build_metadata():
    from relbench.suites import get_suite

    assert get_suite("core+typos").version == "1.0.0+typos-1.0.0"
    chained = get_suite("core+template-2+typos").version
    assert chained == "1.0.0+template-2-1.0.0.typos-1.0.0" and is_release(chained)
    assert perturbed_release("1.0.0", "my_shout", "2.0.0+post1") == "1.0.0+my-shout-2.0.0-post1"
    assert is_release(perturbed_release("1.0.0", "my_shout", "2.0.0+post1"))


def test_detector_configs_have_semantic_versions():
    """Every scorer config in detectors/ carries a semantic version (bumped with the config)."""
    versions = {p.name: json.loads(p.read_text())["version"]
                for p in sorted((ROOT / "detectors").glob("*.json"))}
    assert versions and not {n: v for n, v in versions.items() if not is_release(v)}


# ------------------------------------------------------------ versions read from installed packages

MODULE = '''
from relbench.scoring.judge import ScoreResult


class ShortScorer:
    name = "short"
    version = "3"
    config_hash = "h"

    def describe(self):
        return {"name": self.name, "version": self.version, "config_hash": self.config_hash}

    def score(self, image, spec):
        return ScoreResult(correct=True, relation_strict=True, relation_loose=True, shape=True,
                           color=True, exist_binding=True, unique_binding=True, dx=None, dy=None,
                           found_relation=None, reason="always")


class BadScorer(ShortScorer):
    name = "bad"
    version = "v-two"


def loud(prompt, rng):
    """Upper-cases the prompt."""
    from dataclasses import replace
    return replace(prompt, prompt=prompt.prompt.upper())


loud.version = "1.0"


def quiet(prompt, rng):
    """Lower-cases the prompt."""
    return prompt


quiet.version = "1.2.3.4"
'''


@pytest.fixture
def vplug(tmp_path, monkeypatch):
    """A fake distribution `vplug` 0.1 registering scorers and perturbations with short or bad
    versions, and `oddplug` 1.2.3.4 registering a model and a scorer."""
    root = tmp_path / "site"
    for dist, version, eps in [
        ("vplug", "0.1", """
            [relbench.scorers]
            short = vplug_mod:ShortScorer
            bad = vplug_mod:BadScorer
            [relbench.perturbations]
            loud = vplug_mod:loud
            quiet = vplug_mod:quiet
            """),
        ("oddplug", "1.2.3.4", """
            [relbench.models]
            odd = vplug_mod:ShortScorer
            [relbench.scorers]
            odd = vplug_mod:ShortScorer
            """),
    ]:
        info = root / f"{dist}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(eps))
    (root / "vplug_mod.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(root))
    extensions.refresh()
    yield root
    sys.modules.pop("vplug_mod", None)
    from relbench.suites import perturbations

    for name in ("loud", "quiet"):
        perturbations._REGISTRY.pop(name, None)
    extensions.refresh()


def test_a_scorer_with_a_short_version_is_recorded_in_semantic_form(vplug):
    from relbench.scoring.api import Scorer, load_scorer

    scorer = load_scorer("short")
    assert isinstance(scorer, Scorer) and scorer.version == "3.0.0"
    assert scorer.describe() == {"name": "short", "version": "3.0.0", "config_hash": "h"}
    assert extensions.provenance(extensions.SCORERS, "short")["package_version"] == "0.1.0"


def test_a_scorer_without_a_semantic_version_is_refused_naming_its_package(vplug):
    from relbench.scoring.api import load_scorer

    with pytest.raises(ValueError, match="scorer 'bad' from package vplug: version 'v-two'"):
        load_scorer("bad")


def test_a_perturbation_version_from_a_package_is_normalised_or_refused(vplug):
    from relbench.suites import get_perturbation, get_suite

    assert get_perturbation("loud").version == "1.0.0"
    assert get_suite("core+loud").version == "1.0.0+loud-1.0.0"
    with pytest.raises(ValueError, match="perturbation 'quiet' from package vplug: version "
                                         "'1.2.3.4'"):
        get_perturbation("quiet")


def test_a_package_version_without_a_semantic_form_is_refused_when_recorded(vplug):
    from relbench.models.registry import model_extension

    with pytest.raises(ValueError, match="relbench.models entry point 'odd' from package "
                                         "oddplug: version '1.2.3.4'"):
        model_extension("odd")
    from relbench.scoring.api import load_scorer

    with pytest.raises(ValueError, match="relbench.scorers entry point 'odd' from package oddplug"):
        load_scorer("odd")
