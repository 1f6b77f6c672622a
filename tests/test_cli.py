"""The installed commands: `dsocr-probe` / `python -m dsocr_probe` run the probes as `pytest --dsocr-probe`
does, `dsocr-train` is the training script."""

import importlib.metadata
import json
import subprocess
import sys

import pytest

from dsocr_probe import cli


def console_script(name: str):
    (entry,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == name]
    return entry.load()


def test_the_console_scripts_point_at_the_probes_and_the_training_script():
    from dsocr_probe import train_lora

    assert console_script("dsocr-probe") is cli.main
    assert console_script("dsocr-train") is train_lora.main


def test_help_lists_every_option_and_the_exit_codes(capsys):
    from dsocr_probe.plugin import probe_options

    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for flag, _ in probe_options():
        assert flag.split()[0] in out
    for code, _ in cli.EXIT_CODES:
        assert f"\n  {code}  " in out


def test_train_help_names_its_options(capsys):
    from dsocr_probe import train_lora

    with pytest.raises(SystemExit) as stop:
        train_lora.main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "--config" in out and "--max-steps" in out


def test_python_dash_m_runs_the_probes_with_pytest_options(tmp_path):
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "dsocr_probe", "-k", "environment", "-p", "no:cacheprovider",
         "--dsocr-report-dir", str(reports)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    (report,) = reports.glob("*.json")
    record = json.loads(report.read_text(encoding="utf-8"))
    assert [p["name"] for p in record["probes"]] == ["environment"]
    assert record["partial"] is True


def test_a_bad_option_is_a_usage_error_exit_4(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dsocr_probe", "--dsocr-lang", "de", "-p", "no:cacheprovider"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "--dsocr-lang" in done.stderr
