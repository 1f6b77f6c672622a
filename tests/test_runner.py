"""Probes under --dsocr-timeout: a hang is ended with the stack where it stopped, nothing it started keeps
running, and what a probe loads still reaches the probes after it."""

import os
import subprocess
import sys
import threading
import time

import psutil
import pytest

from dsocr_probe.run import runner
from dsocr_probe.probes.context import Options, ProbeContext
from dsocr_probe.findings import passed
from dsocr_probe.probes import ProbeSpec
from pages import write_pages

needs_fork = pytest.mark.skipif(not runner._can_fork(), reason="a forked child needs fork and no CUDA in this process")


class Probe(ProbeSpec):
    """A probe whose body is given by the test."""

    def __init__(self, body, name="hang"):
        super().__init__(name, name.title(), "environment", time_limited=True)
        object.__setattr__(self, "body", body)

    @property
    def run(self):
        return self.body


def ctx(tmp_path, **kw):
    return ProbeContext(Options(report_dir=tmp_path, timeout_s=kw.pop("timeout_s", 1.0), **kw))


def waits_on_a_grandchild(ctx):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    (ctx.options.report_dir / "grandchild").write_text(str(sleeper.pid))
    sleeper.wait()
    yield passed("hang.never", "never reached")


@needs_fork
def test_a_hang_in_the_child_is_ended_with_its_stack_and_nothing_it_started_survives(tmp_path):
    before = {c.pid for c in psutil.Process().children(recursive=True)}  # e.g. multiprocessing's resource tracker
    started = time.monotonic()
    result = runner.run_probe(Probe(waits_on_a_grandchild), ctx(tmp_path, timeout_s=2.0))
    assert time.monotonic() - started < 10
    (finding,) = result.findings
    assert finding.code == "hang.timeout" and finding.status.value == "fail"
    stack = finding.evidence["where it stopped"]
    assert "waits_on_a_grandchild" in stack and "wait" in stack.splitlines()[0]
    grandchild = int((tmp_path / "grandchild").read_text())
    deadline = time.monotonic() + 5
    while psutil.pid_exists(grandchild) and psutil.Process(grandchild).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the probe's own subprocess is still running"
        time.sleep(0.05)
    left = [c for c in psutil.Process().children(recursive=True) if c.pid not in before]
    assert not [c for c in left if c.status() != psutil.STATUS_ZOMBIE]


@needs_fork
def test_what_the_child_loads_comes_back_to_the_context(tmp_path):
    data = tmp_path / "data"
    write_pages(data / "train", ["one page", "two pages"])

    def loads(ctx):
        split = ctx.dataset().splits["train"]
        ctx.usable_rows(split.rows)
        yield passed("hang.loaded", f"{len(split.rows)} rows", params={"pid": os.getpid()})

    context = ctx(tmp_path, data=data, timeout_s=60.0)
    result = runner.run_probe(Probe(loads), context)
    assert [f.code for f in result.findings] == ["hang.loaded"]
    assert "_cache_dataset" in vars(context) and len(vars(context)["_image_facts"]) == 2
    assert result.findings[0].params["pid"] != os.getpid()  # it ran in a child


@needs_fork
def test_a_child_that_dies_is_a_finding_naming_how(tmp_path):
    def dies(ctx):
        os.kill(os.getpid(), 9)
        yield from ()

    (finding,) = runner.run_probe(Probe(dies), ctx(tmp_path, timeout_s=30.0)).findings
    assert finding.code == "hang.process-died" and finding.status.value == "fail"
    assert "SIGKILL" in finding.title


def test_without_fork_the_alarm_stops_the_probe_where_it_waits_and_no_thread_is_left(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "_can_fork", lambda: False)
    release = threading.Event()

    def waits(ctx):
        release.wait(60)
        yield passed("hang.never", "never reached")

    before = threading.active_count()
    started = time.monotonic()
    (finding,) = runner.run_probe(Probe(waits), ctx(tmp_path, timeout_s=0.5)).findings
    assert time.monotonic() - started < 5
    assert finding.code == "hang.timeout" and "release.wait(60)" in finding.evidence["where it stopped"]
    assert threading.active_count() == before


def test_a_probe_without_a_limit_runs_here(tmp_path):
    def here(ctx):
        yield passed("hang.here", "here", params={"pid": os.getpid()})

    (finding,) = runner.run_probe(Probe(here), ctx(tmp_path, timeout_s=0)).findings
    assert finding.params["pid"] == os.getpid()
