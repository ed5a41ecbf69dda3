"""Perturbation outputs are locked like suites (relbench.suites.perturbation_lock): the lock in
prompts/frozen/perturbations.json matches the code, a changed output under the same version is
refused when applied and when the lock is rewritten, and a bump lets the lock be rewritten."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relbench.suites import get_perturbation, get_suite, list_suites, perturb_suite
from relbench.suites import perturbation_lock as lock
from relbench.suites.perturbation_lock import PerturbationLockError
from relbench.suites.perturbations import _REGISTRY

ROOT = Path(__file__).resolve().parents[1]


def _shout(prompt, rng):
    """A changed output: the text gains a trailing " !"."""
    return replace(prompt, prompt=prompt.prompt + " !")


@pytest.fixture
def changed_typos(monkeypatch):
    """`typos` whose output changed while its version did not."""
    monkeypatch.setitem(_REGISTRY, "typos", replace(_REGISTRY["typos"], fn=_shout))


@pytest.fixture
def lock_copy(tmp_path, monkeypatch):
    """The lock file copied to tmp_path, which `lock_path()` then names."""
    path = tmp_path / "perturbations.json"
    shutil.copy(lock.lock_path(), path)
    monkeypatch.setattr(lock, "lock_path", lambda: path)
    return path


def test_the_lock_covers_every_perturbation_on_every_suite_and_matches_the_code():
    data = lock.read_lock()
    assert sorted(data) == sorted(lock.locked_names()) and len(data) == 13
    for name in lock.locked_names():
        assert sorted(data[name]["suites"]) == sorted(list_suites()), name
        assert lock.check_lock(name) == [], name


def test_the_lock_agrees_with_the_published_run_logs():
    """Every perturbed prompt list on the board was drawn from what the lock pins."""
    data, seen = lock.read_lock(), 0
    for path in sorted((ROOT / "leaderboards" / "runs").glob("*/*/run.json")):
        info = json.loads(path.read_text())
        for p in info.get("perturbations", []):
            assert data[p["name"]]["suites"][info["suite"]]["prompt_hash"] == p["prompt_hash"]
            seen += 1
    assert seen > 0


def test_a_changed_output_is_refused_naming_perturbation_suite_and_hash(changed_typos):
    with pytest.raises(PerturbationLockError,
                       match=r"perturbation 'typos' v1\.0\.0 on suite 'core' gives prompts with "
                             r"hash [0-9a-f]{16}, the lock has [0-9a-f]{16}: its output changed "
                             r"without a version bump"):
        perturb_suite(get_suite("core"), "typos")
    with pytest.raises(ValueError, match="'typos' v1.0.0 on suite 'profile'"):
        get_suite("profile+typos")


def test_a_changed_output_is_caught_whatever_seed_it_is_applied_with(changed_typos):
    with pytest.raises(PerturbationLockError, match="'typos' v1.0.0 on suite 'ood-same-shape'"):
        perturb_suite(get_suite("ood-same-shape"), "typos", seed=3)


def test_unchanged_perturbations_apply_at_any_seed():
    a = perturb_suite(get_suite("core"), "typos", seed=3)
    assert a.seed == 3 and a.prompt_hash != perturb_suite(get_suite("core"), "typos").prompt_hash


def test_a_version_the_lock_does_not_know_is_named(monkeypatch):
    monkeypatch.setitem(_REGISTRY, "typos", replace(_REGISTRY["typos"], version="1.1.0"))
    with pytest.raises(PerturbationLockError,
                       match="perturbation 'typos' is version 1.1.0, the lock has 1.0.0"):
        perturb_suite(get_suite("core"), "typos")


def test_suites_that_are_not_registered_are_not_checked(changed_typos):
    from relbench.suites import Suite

    core = get_suite("core")
    edited = Suite(name="core", version=core.version, description="", prompts=core.prompts[:5])
    assert perturb_suite(edited, "typos").prompts[0].prompt.endswith(" !")
    with pytest.raises(PerturbationLockError):  # the registered suite itself is checked
        perturb_suite(core, "typos")
    chained = perturb_suite(perturb_suite(core, "template-2"), "typos")  # the base is perturbed
    assert chained.prompts[0].prompt.endswith(" !")


def test_a_relbench_perturbation_missing_from_the_lock_is_an_error(monkeypatch):
    def louder(prompt, rng):
        """Upper-case."""
        return replace(prompt, prompt=prompt.prompt.upper())

    louder.__module__ = "relbench.suites.perturbations"
    monkeypatch.setitem(_REGISTRY, "louder", replace(_REGISTRY["typos"], name="louder", fn=louder))
    with pytest.raises(PerturbationLockError, match="perturbation 'louder' is not in .*"
                                                    "perturbations.json"):
        perturb_suite(get_suite("core"), "louder")


def test_rewriting_the_lock_refuses_a_changed_output_without_a_bump(changed_typos, lock_copy):
    before = lock_copy.read_text()
    with pytest.raises(ValueError, match="perturbation 'typos' would change its prompts on suite "
                                         "'core' but its version 1.0.0 was not bumped"):
        lock.write_lock()
    assert lock_copy.read_text() == before


def test_a_bumped_version_rewrites_its_entry_and_then_applies(monkeypatch, lock_copy):
    monkeypatch.setitem(_REGISTRY, "typos", replace(_REGISTRY["typos"], fn=_shout,
                                                    version="1.1.0"))
    assert lock.write_lock() == ["typos"]
    assert lock.read_lock()["typos"]["version"] == "1.1.0" and lock.check_lock("typos") == []
    assert perturb_suite(get_suite("core"), "typos").prompts[0].prompt.endswith(" !")
    assert lock.write_lock() == []  # nothing left to change


def test_the_command_checks_and_rewrites_the_lock(changed_typos, lock_copy):
    from relbench.cli import app

    res = CliRunner().invoke(app, ["suites", "lock-perturbations", "typos", "inverse"])
    assert res.exit_code == 1
    assert "typos: out of date: perturbation 'typos' v1.0.0 on suite 'core'" in res.output
    assert "inverse: ok" in res.output
    res = CliRunner().invoke(app, ["suites", "lock-perturbations", "--write"])
    assert res.exit_code == 1 and "was not bumped" in res.output


def test_an_entry_point_perturbation_is_not_locked():
    pert = replace(get_perturbation("typos"), fn=_shout,
                   extension={"group": "relbench.perturbations", "package": "x"})
    assert not lock.is_locked(pert)
    assert lock.is_locked(get_perturbation("typos"))
