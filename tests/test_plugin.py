"""The plugin end to end, through pytester: items, selection, exit status, reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

FAST = "environment or cuda"  # probes that need no model, to test the plugin's mechanics


def _reports(pytester, suffix):
    return sorted((pytester.path / "reports").glob(f"REPORT_*{suffix}"))


def test_without_the_flag_the_plugin_stays_out_of_the_way(pytester):
    pytester.makepyfile("def test_ok():\n    assert True\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()


def test_probes_are_items_selected_with_k(pytester):
    pytester.makepyfile("def test_never_collected():\n    assert False\n")
    result = pytester.runpytest("--dsocr-probe", "-k", FAST, "-v", "--dsocr-report-dir", "reports")
    result.stdout.fnmatch_lines(["*dsocr-probe::environment PASSED*", "*dsocr-probe::cuda SKIPPED*"])
    result.stdout.no_fnmatch_line("*test_never_collected*")
    assert result.ret == 0
    md, js = _reports(pytester, ".md"), _reports(pytester, ".json")
    assert len(md) == len(js) == 1
    data = json.loads(js[0].read_text(encoding="utf-8"))
    assert [p["name"] for p in data["probes"]] == ["environment", "cuda"]
    assert data["verdict"] in ("GO", "GO with warnings")
    result.stdout.fnmatch_lines(["*verdict: GO*", f"*report: {md[0]}"])


def test_junitxml_carries_statuses(pytester):
    result = pytester.runpytest("--dsocr-probe", "-k", FAST, "--junitxml", "out.xml")
    assert result.ret == 0
    cases = {c.get("name"): c for c in ET.parse(pytester.path / "out.xml").getroot().iter("testcase")}
    assert set(cases) == {"environment", "cuda"}
    assert cases["cuda"].find("skipped") is not None
    props = {p.get("name"): p.get("value") for p in cases["environment"].iter("property")}
    assert props["dsocr_status"] == "pass"


def test_no_go_finding_fails_the_item_and_the_run(pytester):
    pytester.makeconftest(
        """
        from dsocr_probe.inputs.facts import EnvFacts

        def pytest_dsocr_facts(config, facts):
            facts.versions.update(peft="0.18.0", transformers="4.45.0")
            return facts
        """
    )
    result = pytester.runpytest("--dsocr-probe", "-k", FAST)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*peft 0.18.0 cannot be imported with transformers 4.45.0*", "*fix:*peft==0.17.1*", "*verdict: NO-GO*"])
    text = _reports(pytester, ".md")[0].read_text(encoding="utf-8")
    assert "Replay" in text and "peft==0.17.1" in text


def test_a_crashing_probe_is_reported_and_the_others_still_run(pytester, monkeypatch):
    import dsocr_probe.probes.environment as env

    def boom(ctx):
        raise ZeroDivisionError("injected fault")
        yield

    monkeypatch.setattr(env, "run", boom)
    result = pytester.runpytest("--dsocr-probe", "-k", FAST, "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, skipped=1)
    data = json.loads(_reports(pytester, ".json")[0].read_text(encoding="utf-8"))
    env = data["probes"][0]
    assert env["status"] == "error" and "injected fault" in env["findings"][0]["title"]
    assert "boom" in env["findings"][0]["detail"]  # the last frames
    assert data["probes"][1]["name"] == "cuda"
    assert "💥" in _reports(pytester, ".md")[0].read_text(encoding="utf-8")


def test_options_also_come_from_ini(pytester):
    pytester.makeini("[pytest]\ndsocr_report_dir = out\ndsocr_lang = ru\n")
    result = pytester.runpytest("--dsocr-probe", "-k", FAST)
    assert result.ret == 0
    md = list((pytester.path / "out").glob("*.md"))
    assert md and "Вердикт" in md[0].read_text(encoding="utf-8")


def test_bad_option_is_a_usage_error(pytester):
    result = pytester.runpytest("--dsocr-probe", "--dsocr-lang", "de")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dsocr-lang must be en or ru*"])


def test_missing_model_is_a_finding_not_a_traceback(pytester):
    result = pytester.runpytest("--dsocr-probe", "--dsocr-model", "nobody/NoSuchModel", "-k", "model_api")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    from dsocr_probe.inputs.target import download_command

    result.stdout.fnmatch_lines(["*is not in the local Hugging Face cache*", f"*{download_command()} nobody/NoSuchModel*"])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_a_hanging_weight_loading_probe_times_out(pytester, monkeypatch):
    import threading

    import dsocr_probe.probes as probes

    release = threading.Event()

    class Hang(probes.ProbeSpec):
        @property
        def run(self):
            def hang(ctx):
                release.wait(30)
                yield from ()

            return hang

    monkeypatch.setattr(probes, "PROBES", probes.PROBES + (Hang("hang", "Hang", "step", time_limited=True),))
    try:
        result = pytester.runpytest("--dsocr-probe", "-k", "environment or hang", "--dsocr-timeout", "0.5")
    finally:
        release.set()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*did not finish within 0.5 s*"])
    data = json.loads(_reports(pytester, ".json")[0].read_text(encoding="utf-8"))
    assert data["probes"][-1]["findings"][0]["code"] == "hang.timeout"
