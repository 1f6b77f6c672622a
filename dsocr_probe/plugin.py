"""The pytest face of the probes: options, one test item per probe, the report at the end.

With ``--dsocr-probe`` the session collects the probes instead of test files, so
``-k``, ``-x``, ``-v``, ``--junitxml`` and markers work on them as on any test.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from . import probes as probes_mod
from .inputs import progress
from .report import terminal
from .probes.context import Options, ProbeContext
from .findings import ProbeResult, RunRecord, Status
from .run.runner import run_probe

RECORD = pytest.StashKey[RunRecord]()
CONTEXT = pytest.StashKey[ProbeContext]()
REPORT_PATHS = pytest.StashKey[tuple[Path, Path]]()
OFFLINE = pytest.StashKey[pytest.MonkeyPatch]()

# (option, ini type, default, help): each option is also an ini setting named dsocr_<name>.
_OPTIONS: tuple[tuple[str, str, Any, str], ...] = (
    ("model", "string", None, "model folder or hub id (local cache only); default: the built-in demo target"),
    ("revision", "string", None, "pin for trusted remote code: a snapshot's or clean git checkout's commit, or sha256:<digest>"),
    ("trust-remote-code", "bool", False, "allow importing the checkpoint's own Python code"),
    ("allow-unpinned", "bool", False, "accept trusted remote code without a pinned commit (not recommended)"),
    ("data", "string", None, "dataset folder: train/ and val/ with metadata.json of {image_path, text} rows"),
    ("train-config", "string", None, "training config YAML (model, lora, training, data) or TrainingArguments kwargs"),
    ("report-dir", "string", "reports", "where REPORT_<topic>_<time>.md and .json are written"),
    ("lang", "string", "en", "report language: en or ru"),
    ("device", "string", None, "device for the step probe (default: cuda when available, else cpu)"),
    ("timeout", "string", "0", "seconds a probe that reads your files, imports model code or loads weights may take (0: no limit)"),
    ("strict", "bool", False, "warnings block like failures: GO with warnings becomes NO-GO (exit 1)"),
    ("workers", "string", "0", "processes that decode the dataset's images (0: one per available core, at most 8; 1: none, all in this process)"),
    ("nproc", "string", None, "run the training step on N processes with torch.distributed (gloo on CPU, NCCL on "
     "GPUs); default: the config's nproc_per_node, else off; 0: off"),
    ("gpu-memory", "string", None, "memory of the card the run will use, e.g. 16GiB, 24GB, 12G (default: the CUDA device here)"),
)


_DEFAULT_REPORT_DIR = next(default for name, _, default, _ in _OPTIONS if name == "report-dir")


def probe_options() -> list[tuple[str, str]]:
    """(flag with its value, help) of every option, for ``dsocr-probe --help``."""
    return [(f"--dsocr-{name}" if kind == "bool" else f"--dsocr-{name} {name.split('-')[-1].upper()}", help_)
            for name, kind, _, help_ in _OPTIONS]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dsocr-probe", "DeepSeek-OCR fine-tuning gate")
    group.addoption("--dsocr-probe", action="store_true", default=False, help="run the fine-tuning probes instead of tests")
    for name, kind, default, help_ in _OPTIONS:
        dest = "dsocr_" + name.replace("-", "_")
        if kind == "bool":
            group.addoption(f"--dsocr-{name}", action="store_true", default=None, dest=dest, help=help_)
        else:
            group.addoption(f"--dsocr-{name}", action="store", default=None, dest=dest, help=help_)
        parser.addini(dest, help_, type=kind, default=default)


def _value(config: pytest.Config, name: str) -> Any:
    dest = "dsocr_" + name.replace("-", "_")
    cli = config.getoption(dest)
    return cli if cli is not None else config.getini(dest)


def options_from(config: pytest.Config) -> Options:
    def path(name: str) -> Path | None:
        v = _value(config, name)
        return Path(v) if v else None

    lang = _value(config, "lang")
    if lang not in ("en", "ru"):
        raise pytest.UsageError(f"--dsocr-lang must be en or ru, not {lang!r}")
    try:
        timeout = float(_value(config, "timeout") or 0)
    except ValueError:
        raise pytest.UsageError(f"--dsocr-timeout must be a number of seconds, not {_value(config, 'timeout')!r}") from None
    workers = str(_value(config, "workers") or 0)
    if not workers.isdigit():
        raise pytest.UsageError(f"--dsocr-workers must be a whole number of processes (0: one per core), not {workers!r}")
    report_dir = _report_dir(config)
    nproc = _value(config, "nproc")
    if nproc not in (None, ""):
        try:
            nproc = int(nproc)
            if nproc < 0:
                raise ValueError
        except ValueError:
            raise pytest.UsageError(f"--dsocr-nproc must be a whole number of processes (0: off), not {nproc!r}") from None
    else:
        nproc = None
    gpu_memory = _value(config, "gpu-memory") or None
    if gpu_memory is not None:
        from .model.memory_forecast import parse_size

        try:
            gpu_memory = parse_size(gpu_memory)
        except ValueError as exc:
            raise pytest.UsageError(f"--dsocr-gpu-memory: {exc}") from None
    return Options(
        model=_value(config, "model") or None,
        revision=_value(config, "revision") or None,
        trust_remote_code=bool(_value(config, "trust-remote-code")),
        allow_unpinned=bool(_value(config, "allow-unpinned")),
        data=path("data"),
        train_config=path("train-config"),
        report_dir=report_dir,
        lang=lang,
        device=_value(config, "device") or None,
        timeout_s=timeout,
        strict=bool(_value(config, "strict")),
        workers=int(workers),
        nproc=nproc,
        gpu_memory=gpu_memory,
    )


def _report_dir(config: pytest.Config) -> Path:
    """A relative folder from the command line or the default lives under the folder pytest was started
    in (not pytest's rootdir, which moves with the arguments); one from an ini file, beside that file."""
    folder = Path(os.path.expanduser(_value(config, "report-dir")))
    if folder.is_absolute():
        return folder
    from_ini = (config.getoption("dsocr_report_dir") is None and config.inipath is not None
                and config.getini("dsocr_report_dir") != _DEFAULT_REPORT_DIR)
    base = config.inipath.parent if from_ini else config.invocation_params.dir
    return base / folder


def check_report_dir(folder: Path) -> None:
    """Fail at start-up, not after every probe ran: make the folder and write a file in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".REPORT_check.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(name)
    except FileExistsError:
        raise pytest.UsageError(f"--dsocr-report-dir {folder}: a file of that name is in the way, not a folder") from None
    except NotADirectoryError:
        raise pytest.UsageError(f"--dsocr-report-dir {folder}: a part of that path is a file, not a folder") from None
    except OSError as exc:
        raise pytest.UsageError(
            f"--dsocr-report-dir {folder}: reports cannot be written there ({exc.strerror or exc})"
        ) from None
    if not folder.is_dir():
        raise pytest.UsageError(f"--dsocr-report-dir {folder}: a file of that name is in the way, not a folder")


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("dsocr_probe"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "dsocr_probe: a fine-tuning probe collected by dsocr-probe")
    if not _enabled(config):
        return
    config.stash[OFFLINE] = _offline()
    ctx = ProbeContext(
        options_from(config),
        replace_facts=lambda gathered: config.hook.pytest_dsocr_facts(config=config, facts=gathered),
    )
    check_report_dir(ctx.options.report_dir)
    ctx.display = progress.TerminalLine(config)
    config.stash[CONTEXT] = ctx
    config.stash[RECORD] = RunRecord(strict=ctx.options.strict)


def _offline() -> pytest.MonkeyPatch:
    """Hugging Face libraries never reach the network while the probes run; undone at exit."""
    patch = pytest.MonkeyPatch()
    patch.setenv("HF_HUB_OFFLINE", "1")
    patch.setenv("TRANSFORMERS_OFFLINE", "1")
    patch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # already imported: it read the environment at import time
        patch.setattr(constants, "HF_HUB_OFFLINE", True)
    return patch


def pytest_unconfigure(config: pytest.Config) -> None:
    if OFFLINE in config.stash:
        config.stash[OFFLINE].undo()


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> list[pytest.Item] | None:
    """With --dsocr-probe the session collects the probes, not test files (the probe run is its own job)."""
    config = session.config
    if not _enabled(config):
        return None
    hook = config.hook
    suite = ProbeSuite.from_parent(session, name="dsocr-probe", nodeid="dsocr-probe")
    hook.pytest_collectstart(collector=suite)
    items = suite.collect()
    hook.pytest_collectreport(report=pytest.CollectReport(suite.nodeid, "passed", None, items))
    session.items = items
    hook.pytest_collection_modifyitems(session=session, config=config, items=session.items)  # -k, -m, deselect
    record = config.stash[RECORD]
    record.planned = [(spec.name, spec.title) for spec in probes_mod.PROBES]
    record.selected = [item.spec.name for item in session.items if isinstance(item, ProbeItem)]
    hook.pytest_collection_finish(session=session)
    session.testscollected = len(session.items)
    return session.items


class ProbeSuite(pytest.Collector):
    def collect(self) -> list[pytest.Item]:
        return [ProbeItem.from_parent(self, name=spec.name, spec=spec) for spec in probes_mod.PROBES]


class ProbeFailed(Exception):
    """The probe found something that blocks training; the findings say what."""


class ProbeItem(pytest.Item):
    def __init__(self, *, spec: probes_mod.ProbeSpec, **kw: Any):
        super().__init__(**kw)
        self.spec = spec
        self.add_marker("dsocr_probe")
        self.result: ProbeResult | None = None

    def runtest(self) -> None:
        ctx = self.config.stash[CONTEXT]
        record = self.config.stash[RECORD]
        record.running = self.spec.name  # stays set if Ctrl-C ends the run inside this probe
        self.result = result = run_probe(self.spec, ctx)
        record.results.append(result)
        record.running = None
        self.user_properties.append(("dsocr_status", result.status.value))
        for f in result.findings:
            self.user_properties.append((f.code, f.status.value))
        status = result.status
        if status is Status.SKIP:
            pytest.skip(terminal.skip_reason(result, ctx.options.lang))
        if status in record.blocking:
            raise ProbeFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:
        if isinstance(excinfo.value, ProbeFailed) and self.result is not None:
            return terminal.describe(self.result, self.config.stash[CONTEXT].options.lang)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[str, int | None, str]:
        return f"dsocr-probe/{self.spec.module}", None, f"probe {self.spec.name}: {self.spec.title}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if isinstance(item, ProbeItem) and report.skipped and isinstance(report.longrepr, tuple):
        # Point the skip at the probe, not at the line of this plugin that raised it.
        report.longrepr = (f"dsocr-probe::{item.spec.name}", None, report.longrepr[2])
    return report


def pytest_keyboard_interrupt(excinfo) -> None:
    _INTERRUPTED.set()


_INTERRUPTED = threading.Event()  # pytest calls the hook without the config; one session per process


def pytest_sessionstart(session: pytest.Session) -> None:
    _INTERRUPTED.clear()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not _enabled(config) or RECORD not in config.stash:
        return
    record = config.stash[RECORD]
    record.interrupted = _INTERRUPTED.is_set() or exitstatus == pytest.ExitCode.INTERRUPTED
    if not record.results and record.running is None:
        return
    from .report import render as report

    ctx = config.stash[CONTEXT]
    record.environment = ctx.facts.to_json()
    target = ctx.loaded_target()
    record.target = target.describe() if target else {"name": ctx.options.model or "dsocr-demo"}
    config.stash[REPORT_PATHS] = report.write(record, ctx.options)
    if record.verdict.value == "NO-GO" and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if not _enabled(config):
        return None
    opts = config.stash[CONTEXT].options
    return [f"dsocr-probe: model={opts.model or 'built-in demo'} report-dir={opts.report_dir}"]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if REPORT_PATHS not in config.stash:
        return
    record = config.stash[RECORD]
    md, js = config.stash[REPORT_PATHS]
    verdict = record.verdict.value
    markup = {"GO": {"green": True}, "NO-GO": {"red": True}}.get(verdict, {"yellow": True})
    terminalreporter.section("dsocr-probe", sep="=", bold=True, **markup)
    for line, bold in terminal.summary_lines(record, md, js, config.stash[CONTEXT].options.lang):
        terminalreporter.write_line(line, **({"bold": True, **markup} if bold else {}))
