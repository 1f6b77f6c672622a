"""A verdict is only given for what ran: partial runs, strict mode, Ctrl-C, and the report folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dsocr_probe.report.terminal import verdict_line

from dsocr_probe.report import render as report
from dsocr_probe.probes.context import Options
from dsocr_probe.findings import NotRun, ProbeResult, RunRecord, Verdict, warn
from samples import a_pass
from dsocr_probe.probes import PROBES

ALL = len(PROBES)


def _json(folder: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("REPORT_*.json"))]


def _md(folder: Path) -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(folder.glob("REPORT_*.md"))]


# ---------------------------------------------------------------- partial runs


def test_a_run_with_k_is_partial_and_says_so(pytester):
    result = pytester.runpytest("--dsocr-probe", "-k", "environment")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"*verdict: GO* for the 1 of {ALL} probes that ran*", "*not run: cuda (deselected)*"])
    (data,) = _json(pytester.path / "reports")
    assert data["partial"] is True and data["interrupted"] is False
    assert data["probes_planned"] == [s.name for s in PROBES]
    assert {p["name"]: p["why"] for p in data["probes_not_run"]} == {s.name: "deselected" for s in PROBES[1:]}
    (md,) = _md(pytester.path / "reports")
    head = md.splitlines()[2]
    assert f"for the 1 of {ALL} probes that ran" in head, head
    assert "## Not run" in md and "left out by -k, -m or --deselect" in md


def test_a_partial_run_in_russian(pytester):
    result = pytester.runpytest("--dsocr-probe", "-k", "environment", "--dsocr-lang", "ru")
    assert result.ret == 0
    (md,) = _md(pytester.path / "reports")
    assert f"для 1 из {ALL} проверок, которые были выполнены" in md.splitlines()[2]
    assert "## Не выполнены" in md and "исключена через -k, -m или --deselect" in md


def test_deselect_and_x_leave_probes_out(pytester):
    pytester.makeconftest(
        """
        def pytest_dsocr_facts(config, facts):
            facts.versions.update(peft="0.18.0", transformers="4.45.0")
            return facts
        """
    )
    result = pytester.runpytest("--dsocr-probe", "-x", "--deselect", "dsocr-probe::remote_code")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    (data,) = _json(pytester.path / "reports")
    why = {p["name"]: p["why"] for p in data["probes_not_run"]}
    assert why["remote_code"] == "deselected"
    assert why["cuda"] == why["step"] == "not reached"  # -x stopped after the environment NO-GO
    assert data["verdict"] == "NO-GO" and data["partial"] is True
    result.stdout.fnmatch_lines([f"*verdict: NO-GO for the 1 of {ALL} probes that ran*"])


def test_the_whole_plan_is_not_partial():
    record = RunRecord(planned=[("a", "A")], selected=["a"], results=[ProbeResult("a", "A", [a_pass()])])
    assert not record.partial and verdict_line(record) == "GO"
    record.selected = []
    record.results = []
    assert record.not_run() == [("a", "A", NotRun.DESELECTED)]


# ---------------------------------------------------------------- strict


WARNING_PROBE = """
from dsocr_probe.findings import warn
import dsocr_probe.probes.environment as env

_original = env.run


def _warns(ctx):
    yield warn("cuda.no-bf16", params={"device": "Tesla T4", "sm": "sm_75"})


def pytest_configure(config):  # in-process runs share the module: put it back afterwards
    env.run = _warns


def pytest_unconfigure(config):
    env.run = _original
"""


def test_strict_makes_warnings_block(pytester):
    pytester.makeconftest(WARNING_PROBE)
    relaxed = pytester.runpytest("--dsocr-probe", "-k", "environment")
    assert relaxed.ret == 0
    relaxed.stdout.fnmatch_lines(["*verdict: GO with warnings*"])
    strict = pytester.runpytest("--dsocr-probe", "-k", "environment", "--dsocr-strict")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(["*verdict: NO-GO*", "*--dsocr-strict: warnings block*"])
    data = {d["strict"]: d["verdict"] for d in _json(pytester.path / "reports")}  # two runs may share a second
    assert data == {False: "GO with warnings", True: "NO-GO"}
    (md,) = [text for text in _md(pytester.path / "reports") if "Strict mode" in text]
    assert "Strict mode" in md and "Tesla T4 (sm_75) has no bf16" in md.split("## ❌ Blockers")[1].split("\n---")[0]


def test_strict_from_ini(pytester):
    pytester.makeconftest(WARNING_PROBE)
    pytester.makeini("[pytest]\ndsocr_strict = true\n")
    assert pytester.runpytest("--dsocr-probe", "-k", "environment").ret == pytest.ExitCode.TESTS_FAILED


# ---------------------------------------------------------------- Ctrl-C

SLOW_PROBE = """
import os, pathlib, time, importlib

_slow = os.environ["DSOCR_TEST_SLOW_PROBE"]
_mark = pathlib.Path(os.environ["DSOCR_TEST_MARK"])
_mod = importlib.import_module("dsocr_probe.probes." + _slow)
_original = _mod.run

def _sleeps(ctx):
    _mark.write_text("started")
    time.sleep(60)
    yield from _original(ctx)

_mod.run = _sleeps
"""


def _interrupted_run(folder: Path, slow: str, *args: str) -> tuple[int, str]:
    (folder / "conftest.py").write_text(SLOW_PROBE)
    mark = folder / "started"
    env = dict(os.environ, DSOCR_TEST_SLOW_PROBE=slow, DSOCR_TEST_MARK=str(mark), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parents[1]), env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "--dsocr-probe", "-p", "no:cacheprovider", *args],
                            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not mark.exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the slow probe never started"
            time.sleep(0.05)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out


@pytest.mark.parametrize(
    "slow, args",
    [
        ("environment", ("-k", "environment or cuda")),  # the first probe: nothing finished
        ("cuda", ("-k", "environment or cuda")),  # after a probe that passed
        ("environment", ("-k", "environment or cuda", "--dsocr-lang", "ru")),
        ("dataset", ("-k", "environment or dataset", "--dsocr-timeout", "50")),  # a probe run in a worker thread
    ],
)
def test_ctrl_c_never_leaves_a_go_verdict(tmp_path, slow, args):
    data = tmp_path / "data"
    from pages import write_pages

    write_pages(data / "train", ["one page"])
    code, out = _interrupted_run(tmp_path, slow, "--dsocr-data", str(data), *args)
    assert code == pytest.ExitCode.INTERRUPTED, out
    said = "вердикт: INTERRUPTED" if "ru" in args else "verdict: INTERRUPTED"
    assert "verdict: GO" not in out and said in out, out
    (js,) = _json(tmp_path / "reports")
    assert js["verdict"] == "INTERRUPTED" and js["interrupted"] is True
    why = {p["name"]: p["why"] for p in js["probes_not_run"]}
    assert why[slow] == "interrupted"
    assert slow not in [p["name"] for p in js["probes"]]
    (md,) = _md(tmp_path / "reports")
    head = md.splitlines()[2]
    assert "INTERRUPTED" in head and "GO" not in head.replace("INTERRUPTED", ""), head
    if "ru" in args:
        assert "вердикта нет" in head and "## Не выполнены" in md
    else:
        assert "no verdict was reached" in head and "## Not run" in md


def test_an_interrupted_record_has_no_verdict():
    record = RunRecord(planned=[("a", "A"), ("b", "B")], selected=["a", "b"], running="b", interrupted=True,
                       results=[ProbeResult("a", "A", [a_pass()])])
    assert record.verdict is Verdict.INTERRUPTED
    assert record.not_run() == [("b", "B", NotRun.INTERRUPTED)]
    assert verdict_line(record).startswith("INTERRUPTED during the B probe")


# ---------------------------------------------------------------- the report folder


def test_report_folder_that_is_a_file_is_a_usage_error(pytester):
    (pytester.path / "taken").write_text("not a folder")
    result = pytester.runpytest("--dsocr-probe", "--dsocr-report-dir", "taken")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dsocr-report-dir*taken*not a folder*"])
    result.stdout.no_fnmatch_line("*dsocr-probe::environment*")  # checked before any probe ran
    beneath = pytester.runpytest("--dsocr-probe", "--dsocr-report-dir", "taken/reports")
    assert beneath.ret == pytest.ExitCode.USAGE_ERROR
    beneath.stderr.fnmatch_lines(["*taken/reports*is a file, not a folder*"])


def test_report_folder_name_too_long_is_a_usage_error(pytester):
    name = "r" * 400
    result = pytester.runpytest("--dsocr-probe", "--dsocr-report-dir", name)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--dsocr-report-dir*{name[:50]}*cannot be written there*"])


def test_unwritable_report_folder_is_a_usage_error(pytester, tmp_path):
    if os.geteuid() == 0:  # root writes anywhere a plain filesystem allows
        folder = Path("/sys/dsocr-probe-reports")
        if not Path("/sys").is_dir():
            pytest.skip("no /sys to stand for a folder root cannot write")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        folder = locked / "reports"
    result = pytester.runpytest("--dsocr-probe", "--dsocr-report-dir", str(folder))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{folder}*cannot be written there*"])


def test_default_reports_go_under_the_start_folder_whatever_the_argument_order(pytester, tmp_path):
    from pages import write_pages

    data = tmp_path / "elsewhere" / "data"
    write_pages(data / "train", ["one page"])
    for args in (("--dsocr-data", str(data)), (f"--dsocr-data={data}",)):
        result = pytester.runpytest("--dsocr-probe", "-k", "environment", *args)
        assert result.ret == 0
    assert len(_json(pytester.path / "reports")) == 2
    assert not list(tmp_path.rglob("REPORT_*"))


def test_reports_are_readable_by_the_team(tmp_path):
    record = RunRecord(target={"name": "m"}, environment={}, results=[ProbeResult("a", "A", [a_pass()])])
    old = os.umask(0o027)
    try:
        md, js = report.write(record, Options(report_dir=tmp_path))
    finally:
        os.umask(old)
    assert (md.stat().st_mode & 0o777, js.stat().st_mode & 0o777) == (0o640, 0o640)


def test_long_table_cells_are_cut_in_markdown_only(tmp_path):
    rows = ", ".join(f"train[{i}]" for i in range(18_000))
    finding = warn("dataset.duplicates", params={"n": 1}, table=[{"same": "text", "rows": rows}],
                   evidence={"where": "x" * 5000})
    record = RunRecord(target={"name": "m"}, environment={}, results=[ProbeResult("dataset", "Dataset", [finding])])
    md, js = report.write(record, Options(report_dir=tmp_path))
    assert md.stat().st_size < 20_000
    text = md.read_text(encoding="utf-8")
    assert f"… ({len(rows) - report.MAX_CELL_CHARS} more)" in text and "train[0], train[1]" in text
    data = json.loads(js.read_text(encoding="utf-8"))
    assert data["probes"][0]["findings"][0]["table"][0]["rows"] == rows
