import datetime as dt
import json

import pytest

from dsocr_probe.report import render as report
from dsocr_probe.probes.context import Options
from dsocr_probe.findings import ProbeResult, RunRecord, Status, Verdict, fail, probe_error
from samples import a_failure, a_pass, a_warning


def _record(*findings):
    return RunRecord(target={"name": "org/Model"}, environment={"python": "3.11", "os": "Linux", "versions": {"torch": "2.13.0"}},
                     results=[ProbeResult("environment", "Environment", list(findings), 0.5)])


def test_verdict_follows_the_worst_finding():
    assert _record(a_pass()).verdict is Verdict.GO
    assert _record(a_pass(), a_warning()).verdict is Verdict.GO_WITH_WARNINGS
    assert _record(a_warning(), a_failure()).verdict is Verdict.NO_GO
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        err = probe_error("environment", exc)
    assert err.status is Status.ERROR and "boom" in err.title and "test_report.py" in err.detail
    assert _record(err).verdict is Verdict.NO_GO


def test_reports_are_never_overwritten(tmp_path):
    opts = Options(report_dir=tmp_path)
    when = dt.datetime(2026, 1, 10, 16, 8, 7)
    first = report.write(_record(a_pass()), opts, now=when)
    second = report.write(_record(a_failure()), opts, now=when)
    assert first[0].name == "REPORT_Model_20260110-160807.md"
    assert second[0].name == "REPORT_Model_20260110-160807-1.md"
    assert "NO-GO" not in first[0].read_text(encoding="utf-8").splitlines()[2]
    assert "NO-GO" in second[0].read_text(encoding="utf-8").splitlines()[2]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_json_twin_has_schema_and_findings(tmp_path):
    failure = a_failure(evidence={"v": 1})
    md, js = report.write(_record(failure), Options(report_dir=tmp_path))
    data = json.loads(js.read_text(encoding="utf-8"))
    assert data["schema_version"] == report.SCHEMA_VERSION
    assert data["verdict"] == "NO-GO"
    f = data["probes"][0]["findings"][0]
    assert (f["code"], f["variant"], f["status"], f["evidence"]) == ("cuda.kernel-failed", "", "fail", {"v": 1})
    assert f["title"] == failure.title and f["fix"] == failure.fix and f["params"] == failure.params


def test_russian_report(tmp_path):
    md, _ = report.write(_record(a_warning()), Options(report_dir=tmp_path, lang="ru"))
    text = md.read_text(encoding="utf-8")
    assert "Вердикт" in text and "Предупреждения" in text and "Отпечаток окружения" in text


KILLED_WRITER = """
import os, sys, time
from pathlib import Path
from dsocr_probe.report import render as report
from dsocr_probe.probes.context import Options
from dsocr_probe.findings import ProbeResult, RunRecord, passed

real_link, real_fdopen = os.link, os.fdopen


def slow_link(src, dst):
    # The temporary file is complete here; the kill lands before it is published.
    print("publishing", flush=True)
    time.sleep(60)
    real_link(src, dst)


class HalfWritten:
    # The kill lands with half of the report in the temporary file.
    def __init__(self, fh):
        self.fh = fh

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.fh.__exit__(*exc)

    def write(self, text):
        self.fh.write(text[: len(text) // 2])
        self.fh.flush()
        print("writing", flush=True)
        time.sleep(60)

    def __getattr__(self, name):
        return getattr(self.fh, name)


if sys.argv[2] == "publishing":
    os.link = slow_link
else:
    os.fdopen = lambda *a, **kw: HalfWritten(real_fdopen(*a, **kw))
device = passed("cuda.device", params={"device": "NVIDIA A100", "sm": "sm_80"})
record = RunRecord(target={"name": "m"}, environment={}, results=[ProbeResult("environment", "Environment", [device], 0.1)])
report.write(record, Options(report_dir=Path(sys.argv[1])))
"""


@pytest.mark.parametrize("moment", ["writing", "publishing"])
def test_a_run_killed_mid_report_leaves_no_partial_report(tmp_path, moment):
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path), moment], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == moment
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert list(tmp_path.glob("REPORT_*")) == []  # only a hidden temporary may remain, never a half report
    leftovers = list(tmp_path.glob(".REPORT_*.tmp"))
    assert leftovers
    # The next run is not disturbed by the leftover and still writes a whole report; a leftover older than
    # any run is removed, a recent one (perhaps a live run's) is kept.
    old = time.time() - report.STALE_TEMPORARY_S - 60
    for leftover in leftovers:
        os.utime(leftover, (old, old))
    live = tmp_path / ".REPORT_m_20260101-000000.md.abc.tmp"
    live.write_text("another run, still writing")
    md, js = report.write(_record(a_pass()), Options(report_dir=tmp_path))
    assert md.read_text(encoding="utf-8").startswith("# ") and json.loads(js.read_text(encoding="utf-8"))
    assert list(tmp_path.glob(".REPORT_*.tmp")) == [live]


def test_russian_report_translates_finding_texts(tmp_path):
    f = fail("train_config.renamed-argument", "never",
             params={"key": "optimizer", "use": "optim", "where": "TrainingArguments"})
    md, js = report.write(_record(f), Options(report_dir=tmp_path, lang="ru"))
    text = md.read_text(encoding="utf-8")
    assert "TrainingArguments не принимает аргумент `optimizer`" in text
    assert "Используйте `optim` вместо `optimizer`." in text
    assert json.loads(js.read_text(encoding="utf-8"))["probes"][0]["findings"][0]["title"].startswith("TrainingArguments got")


def test_a_finding_that_stopped_another_is_worded_inside_it():
    from dsocr_probe.findings import ProbeStop
    from dsocr_probe.probes.context import ProbeContext

    ctx = ProbeContext(Options(model="/nonexistent/model"))
    with pytest.raises(ProbeStop) as stop:
        ctx.needs(ctx.target, "batch")
    f = stop.value.finding
    assert (f.code, f.status) == ("batch.prerequisite", Status.SKIP)
    assert f.title.startswith("Not checked: The model folder `/nonexistent/model` does not exist")
    text = f.text("ru")
    assert text.title == "Не проверено: Папки модели `/nonexistent/model` нет (/nonexistent/model)"
    assert text.fix.startswith("Проверьте путь на опечатки")
