"""Suites: sizes, frozen lists, the lock, user prompt files and the `relbench suites` CLI."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relbench.resources import repo_root
from relbench.scene import COLOR_RGB, RELATIONS, ObjectSpec, RelationSpec
from relbench.suites import (
    build_suite,
    check_frozen,
    get_suite,
    list_suites,
    load_suite_file,
    parse_prompt,
)
from relbench.suites import registry
from relbench.suites.registry import frozen_path, write_frozen

SIZES = {
    "core": 96,
    "profile": 264,
    "ood-same-shape": 48,
    "ood-same-color": 96,
    "ood-color-only": 16,
    "ood-shape-only": 48,
    "ood-unseen-colors": 288,
}


def _suites_app():
    """The suites sub-app; through the full CLI when every command module exists."""
    try:
        from relbench.cli import app

        return app, ["suites"]
    except ImportError:  # other engineers' command modules not written yet
        import importlib.util

        path = Path(registry.__file__).parents[1] / "cli" / "suites.py"
        spec = importlib.util.spec_from_file_location("_relbench_cli_suites", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.app, []


def test_registered_suites_and_sizes():
    assert list_suites() == list(SIZES)
    for name, n in SIZES.items():
        suite = get_suite(name)
        assert len(suite) == n, name
        assert len({p.prompt for p in suite.prompts}) == n, f"{name} repeats a prompt"
        assert [p.id for p in suite.prompts] == [f"{name}/{i:04d}" for i in range(n)]


def test_frozen_lists_match_their_definitions():
    """Regenerate with `relbench suites build --write` (bump the suite's version in
    prompts/suites.json first if its prompts change)."""
    for name in list_suites():
        assert check_frozen(name) == [], name
        assert get_suite(name).prompt_hash == build_suite(name).prompt_hash
        digest = hashlib.sha256(frozen_path(name).read_bytes()).hexdigest()
        assert digest == get_suite(name).prompt_hash


def test_core_is_the_papers_grid():
    core = get_suite("core")
    assert {p.relation for p in core.prompts} == set(RELATIONS)
    for p in core.prompts:
        assert parse_prompt(p.prompt) == p.spec
        assert {p.spec.subject.color, p.spec.reference.color} == {"red", "blue"}
        assert p.spec.subject.shape != p.spec.reference.shape
        assert p.template == 1 and p.perturbation is None and p.source_id == p.id
    assert len({p.phrase for p in get_suite("profile").prompts}) == 22


def test_ood_suites_are_what_their_names_say():
    for p in get_suite("ood-same-shape").prompts:
        assert p.spec.subject.shape == p.spec.reference.shape
        assert p.spec.subject.color != p.spec.reference.color
    for p in get_suite("ood-same-color").prompts:
        assert p.spec.subject.color == p.spec.reference.color
        assert p.spec.subject.shape != p.spec.reference.shape
    assert all(p.spec.subject.shape is None for p in get_suite("ood-color-only").prompts)
    assert all(p.spec.reference.color is None for p in get_suite("ood-shape-only").prompts)
    unseen = {p.spec.subject.color for p in get_suite("ood-unseen-colors").prompts}
    assert unseen and unseen <= set(COLOR_RGB) - {"red", "blue"}


def test_unknown_suite_suggests_a_name():
    with pytest.raises(ValueError, match="did you mean 'core'"):
        get_suite("cor")


def test_load_suite_file(tmp_path):
    f = tmp_path / "mine.jsonl"
    spec = RelationSpec(ObjectSpec("circle", "green"), "left", ObjectSpec("square", "red"))
    rows = [
        {"prompt": "square is to the upper left of blue circle", "tag": "x"},
        {"prompt": "anything the model sees", "spec": spec.to_dict()},
        {"prompt": "the red square is above the blue circle", "id": "my-3"},
    ]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    suite = load_suite_file(f)
    assert len(suite) == 3 and suite.name == "file:mine.jsonl"
    a, b, c = suite.prompts
    assert a.spec.relation == "upper_left" and a.spec.subject.color is None and a.meta == {"tag": "x"}
    assert a.template == 1 and a.phrase == "to the upper left of"
    assert b.spec == spec and b.phrase is None
    assert c.id == "my-3" and c.template == 5


@pytest.mark.parametrize(
    "bad, message",
    [
        ('{"prompt": "red squre above blue circle"}', r"mine.jsonl:2: cannot parse .*unknown word 'squre'"),
        ('{"prompt": "red square above blue circle"', r"mine.jsonl:2: invalid JSON"),
        ('{"text": "red square above blue circle"}', r"mine.jsonl:2: missing 'prompt'"),
        ('{"prompt": "x", "spec": {"relation": "near"}}', r"mine.jsonl:2: malformed spec"),
    ],
)
def test_load_suite_file_names_the_bad_line(tmp_path, bad, message):
    f = tmp_path / "mine.jsonl"
    f.write_text('{"prompt": "red is above blue"}\n' + bad + "\n")
    with pytest.raises(ValueError, match=message):
        load_suite_file(f)


@pytest.fixture
def tmp_home(tmp_path, monkeypatch):
    """A copy of the data directories, so writing tests never touch the real frozen files."""
    root = repo_root()
    shutil.copytree(root / "prompts", tmp_path / "prompts")
    shutil.copytree(root / "detectors", tmp_path / "detectors")
    monkeypatch.setenv("RELBENCH_HOME", str(tmp_path))
    registry._definitions.cache_clear()
    registry._load_frozen.cache_clear()
    yield tmp_path
    registry._definitions.cache_clear()
    registry._load_frozen.cache_clear()


def _edit_core(home: Path, **changes) -> None:
    path = home / "prompts" / "suites.json"
    data = json.loads(path.read_text())
    data["suites"][0].update(changes)
    path.write_text(json.dumps(data))
    registry._definitions.cache_clear()
    registry._load_frozen.cache_clear()


def test_a_changed_suite_fails_the_check_and_needs_a_version_bump(tmp_home):
    _edit_core(tmp_home, template=2)
    assert check_frozen("core")  # frozen list no longer matches the definition
    with pytest.raises(ValueError, match="version 1.0.0 was not bumped"):
        write_frozen("core")
    _edit_core(tmp_home, version="1.1.0")
    with pytest.raises(ValueError, match="does not match"):
        get_suite("core")  # loading refuses a stale frozen list
    assert write_frozen("core") is True
    assert check_frozen("core") == []
    core = get_suite("core")
    assert core.version == "1.1.0" and core.prompts[0].prompt == "red circle above blue square"
    assert write_frozen("core") is False


def test_hand_edited_frozen_file_is_refused(tmp_home):
    path = tmp_home / "prompts" / "frozen" / "core.jsonl"
    path.write_text(path.read_text().replace("red circle is above", "red circle is below", 1))
    registry._load_frozen.cache_clear()
    with pytest.raises(ValueError, match="does not match"):
        get_suite("core")


def test_cli_list_show_build(tmp_home):
    app, prefix = _suites_app()
    runner = CliRunner()
    res = runner.invoke(app, prefix + ["list", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert {s["name"]: s["size"] for s in data["suites"]} == SIZES
    assert {p["name"] for p in data["perturbations"]} >= {"typos", "template-6"}

    res = runner.invoke(app, prefix + ["show", "core", "--perturb", "typos", "--limit", "2", "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert len(rows) == 2 and rows[1]["source_id"] == "core/0001" and rows[1]["perturbation"] == "typos"

    res = runner.invoke(app, prefix + ["show", "cor"])
    assert res.exit_code != 0 and "did you mean 'core'" in res.output

    res = runner.invoke(app, prefix + ["build"])
    assert res.exit_code == 0 and res.output.count(": ok") == len(SIZES)
    _edit_core(tmp_home, template=3)
    res = runner.invoke(app, prefix + ["build", "core"])
    assert res.exit_code == 1 and "out of date" in res.output
    res = runner.invoke(app, prefix + ["build", "core", "--write"])
    assert res.exit_code == 1 and "not bumped" in res.output


def test_suites_never_import_torch():
    import subprocess
    import sys

    code = "import sys, relbench.suites, relbench.suites.registry; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
