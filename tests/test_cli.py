"""The `relbench` app: every command is wired, and bad input exits 2 with a message."""

from typer.testing import CliRunner

from relbench.cli import app

runner = CliRunner()


def test_every_command_is_listed():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("score", "eval", "train", "suites", "data"):
        assert command in result.output


def test_train_rejects_a_bad_config(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = runner.invoke(app, ["train", str(bad), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "not valid JSON" in result.output
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "run"), "--set", "model.preset=micr"])
    assert result.exit_code == 2
    assert "micro" in result.output  # the did-you-mean names the preset
