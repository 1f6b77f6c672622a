import datetime as dt
import json

from dsocr_probe import report
from dsocr_probe.context import Options
from dsocr_probe.findings import ProbeResult, RunRecord, Status, Verdict, fail, passed, probe_error, warn


def _record(*findings):
    return RunRecord(target={"name": "org/Model"}, environment={"python": "3.11", "os": "Linux", "versions": {"torch": "2.13.0"}},
                     results=[ProbeResult("environment", "Environment", list(findings), 0.5)])


def test_verdict_follows_the_worst_finding():
    assert _record(passed("a", "ok")).verdict is Verdict.GO
    assert _record(passed("a", "ok"), warn("b", "hm")).verdict is Verdict.GO_WITH_WARNINGS
    assert _record(warn("b", "hm"), fail("c", "no")).verdict is Verdict.NO_GO
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        err = probe_error("environment", exc)
    assert err.status is Status.ERROR and "boom" in err.title and "test_report.py" in err.detail
    assert _record(err).verdict is Verdict.NO_GO


def test_reports_are_never_overwritten(tmp_path):
    opts = Options(report_dir=tmp_path)
    when = dt.datetime(2026, 1, 10, 16, 8, 7)
    first = report.write(_record(passed("a", "ok")), opts, now=when)
    second = report.write(_record(fail("c", "no", fix="do it")), opts, now=when)
    assert first[0].name == "REPORT_Model_20260110-160807.md"
    assert second[0].name == "REPORT_Model_20260110-160807-1.md"
    assert "NO-GO" not in first[0].read_text(encoding="utf-8").splitlines()[2]
    assert "NO-GO" in second[0].read_text(encoding="utf-8").splitlines()[2]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_json_twin_has_schema_and_findings(tmp_path):
    md, js = report.write(_record(fail("env.x", "broken", fix="pip install x", evidence={"v": 1})), Options(report_dir=tmp_path))
    data = json.loads(js.read_text(encoding="utf-8"))
    assert data["schema_version"] == report.SCHEMA_VERSION
    assert data["verdict"] == "NO-GO"
    f = data["probes"][0]["findings"][0]
    assert (f["code"], f["status"], f["fix"], f["evidence"]) == ("env.x", "fail", "pip install x", {"v": 1})


def test_russian_report(tmp_path):
    md, _ = report.write(_record(warn("b", "hm", fix="do")), Options(report_dir=tmp_path, lang="ru"))
    text = md.read_text(encoding="utf-8")
    assert "Вердикт" in text and "Предупреждения" in text and "Отпечаток окружения" in text


KILLED_WRITER = """
import os, sys, time
from pathlib import Path
from dsocr_probe import report
from dsocr_probe.context import Options
from dsocr_probe.findings import ProbeResult, RunRecord, passed

real_link = os.link

def slow_link(src, dst):
    # The temporary file is complete here; the kill lands before it is published.
    print("publishing", flush=True)
    time.sleep(60)
    real_link(src, dst)

os.link = slow_link
record = RunRecord(target={"name": "m"}, environment={}, results=[ProbeResult("environment", "Environment", [passed("a", "ok")], 0.1)])
report.write(record, Options(report_dir=Path(sys.argv[1])))
"""


def test_a_run_killed_mid_report_leaves_no_partial_report(tmp_path):
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "publishing"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert list(tmp_path.glob("REPORT_*")) == []  # only a hidden temporary may remain, never a half report
    # The next run is not disturbed by the leftover and still writes a whole report.
    md, js = report.write(_record(passed("a", "ok")), Options(report_dir=tmp_path))
    assert md.read_text(encoding="utf-8").startswith("# ") and json.loads(js.read_text(encoding="utf-8"))


def test_russian_report_translates_finding_texts(tmp_path):
    f = fail("train_config.renamed-argument", "TrainingArguments got an unexpected keyword argument `optimizer`",
             fix="Use `optim` instead of `optimizer`.", params={"key": "optimizer", "use": "optim"})
    md, js = report.write(_record(f), Options(report_dir=tmp_path, lang="ru"))
    text = md.read_text(encoding="utf-8")
    assert "TrainingArguments не принимает аргумент `optimizer`" in text
    assert "Используйте `optim` вместо `optimizer`." in text
    assert json.loads(js.read_text(encoding="utf-8"))["probes"][0]["findings"][0]["title"].startswith("TrainingArguments got")


def test_every_translation_formats_with_the_params_its_probe_gives():
    import string

    from dsocr_probe.i18n import RU

    for code, texts in RU.items():
        for text in texts.values():
            fields = {name for _, name, _, _ in string.Formatter().parse(text) if name}
            assert fields <= {"peft", "transformers", "torch", "dist", "requirement", "have", "torch_cuda", "device", "sm",
                              "build", "model", "key", "use", "suggestion", "auto_class", "bs", "n", "effective",
                              "total", "epochs", "workers", "problem", "task", "want", "near", "kind", "max_length",
                              "given", "first", "last", "steps", "what", "error"}, code
