"""The one data model every probe returns and every renderer reads.

A probe yields :class:`Finding` objects; the plugin wraps them in a :class:`ProbeResult`;
:class:`RunRecord` holds all results of one run and decides the verdict.
"""

from __future__ import annotations

import enum
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable


class Status(str, enum.Enum):
    """How one finding weighs on the go/no-go decision (ordered from harmless to fatal)."""

    SKIP = "skip"  # the probe could not look: says why, never pretends to pass
    PASS = "pass"
    WARN = "warn"  # training starts, but something will hurt (time, quality, money)
    FAIL = "fail"  # training will not start, fit or learn: NO-GO
    ERROR = "error"  # the probe itself broke: NO-GO, because we do not know

    @property
    def icon(self) -> str:
        return _ICONS[self]

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def blocks(self) -> bool:
        return self in (Status.FAIL, Status.ERROR)


_ICONS = {
    Status.PASS: "✅",
    Status.WARN: "⚠️",
    Status.FAIL: "❌",
    Status.SKIP: "⏭",
    Status.ERROR: "💥",
}
_RANK = {Status.SKIP: 0, Status.PASS: 1, Status.WARN: 2, Status.FAIL: 3, Status.ERROR: 4}


class Verdict(str, enum.Enum):
    GO = "GO"
    GO_WITH_WARNINGS = "GO with warnings"
    NO_GO = "NO-GO"
    INTERRUPTED = "INTERRUPTED"  # stopped before the end: no verdict was reached


class NotRun(str, enum.Enum):
    """Why a planned probe has no result."""

    DESELECTED = "deselected"  # -k, -m or --deselect left it out
    NOT_REACHED = "not reached"  # the run stopped before it (-x, Ctrl-C)
    INTERRUPTED = "interrupted"  # it was running when the run was stopped


@dataclass
class Finding:
    """One fact a probe established, how much it matters, and what to do about it.

    ``code`` is a stable identifier (``probe.what``) used by tests, the JSON twin and the
    translations; ``params`` are the values the translated text is formatted with.
    """

    status: Status
    code: str
    title: str
    detail: str = ""
    fix: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["evidence"] = {k: _jsonable(v) for k, v in self.evidence.items()}
        data["table"] = [{k: _jsonable(v) for k, v in row.items()} for row in self.table]
        data["params"] = {k: _jsonable(v) for k, v in self.params.items()}
        return data


def passed(code: str, title: str, **kw: Any) -> Finding:
    return Finding(Status.PASS, code, title, **kw)


def warn(code: str, title: str, **kw: Any) -> Finding:
    return Finding(Status.WARN, code, title, **kw)


def fail(code: str, title: str, **kw: Any) -> Finding:
    return Finding(Status.FAIL, code, title, **kw)


def skip(code: str, title: str, **kw: Any) -> Finding:
    return Finding(Status.SKIP, code, title, **kw)


def cause_params(cause: Finding) -> dict[str, Any]:
    """Params for a finding that only says ``cause`` stopped it: the cause's own params, its title,
    and its code, so a translated report can word the cause in the same language."""
    return {**cause.params, "cause": cause.title, "cause_code": cause.code}


def probe_error(probe: str, exc: BaseException, *, frames: int = 6) -> Finding:
    """A probe that raised: the exception and its last frames, so the bug can be filed."""
    tb = traceback.extract_tb(exc.__traceback__)[-frames:]
    return Finding(
        Status.ERROR,
        f"{probe}.probe-error",
        f"The {probe} probe raised {type(exc).__name__}: {exc}",
        detail="".join(traceback.format_list(tb)).rstrip(),
        fix="This is a bug in the probe or an input it does not understand; the other probes still ran. "
        "Re-run with `-x --tb=long -k " + probe + "` for the full traceback.",
        evidence={"exception": f"{type(exc).__module__}.{type(exc).__qualname__}"},
    )


class ProbeStop(Exception):
    """Raised inside a probe to end it early with one finding (e.g. a prerequisite is missing)."""

    def __init__(self, finding: Finding):
        super().__init__(finding.title)
        self.finding = finding


@dataclass
class ProbeResult:
    name: str
    title: str
    findings: list[Finding]
    duration_s: float = 0.0

    @property
    def status(self) -> Status:
        return worst(f.status for f in self.findings) if self.findings else Status.SKIP

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "duration_s": round(self.duration_s, 3),
            "findings": [f.to_json() for f in self.findings],
        }


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=lambda s: s.rank, default=Status.SKIP)


@dataclass
class RunRecord:
    """Everything one ``pytest --dsocr-probe`` run found, in probe order.

    It also knows which probes were planned and which the session selected, so a verdict is only
    given for what ran, and a run stopped half-way says so instead of passing for a whole one.
    """

    target: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    results: list[ProbeResult] = field(default_factory=list)
    planned: list[tuple[str, str]] = field(default_factory=list)  # (name, title) of every probe; empty: what ran
    selected: list[str] | None = None  # names left after -k/-m/--deselect; None: all planned ones
    running: str | None = None  # the probe in progress, when the run ended inside one
    interrupted: bool = False
    strict: bool = False  # --dsocr-strict: warnings block like failures

    @property
    def blocking(self) -> tuple[Status, ...]:
        return (Status.FAIL, Status.ERROR, Status.WARN) if self.strict else (Status.FAIL, Status.ERROR)

    @property
    def verdict(self) -> Verdict:
        if self.interrupted:
            return Verdict.INTERRUPTED
        statuses = [r.status for r in self.results]
        if any(s in self.blocking for s in statuses):
            return Verdict.NO_GO
        if Status.WARN in statuses:
            return Verdict.GO_WITH_WARNINGS
        return Verdict.GO

    def not_run(self) -> list[tuple[str, str, NotRun]]:
        """(name, title, why) of each planned probe that has no result."""
        ran = {r.name for r in self.results}
        out = []
        for name, title in self.planned:
            if name in ran:
                continue
            if self.selected is not None and name not in self.selected:
                why = NotRun.DESELECTED
            elif name == self.running:
                why = NotRun.INTERRUPTED
            else:
                why = NotRun.NOT_REACHED
            out.append((name, title, why))
        return out

    @property
    def partial(self) -> bool:
        return bool(self.not_run())

    def verdict_line(self) -> str:
        """The verdict in one English line, with how much of the plan it covers."""
        planned = len(self.planned) or len(self.results)
        ran = len(self.results)
        if self.interrupted:
            during = f" during the {self.running} probe" if self.running else ""
            return f"INTERRUPTED{during}: no verdict ({ran} of {planned} probes finished)"
        if self.partial:
            return f"{self.verdict.value} for the {ran} of {planned} probes that ran"
        return self.verdict.value

    def findings(self, *statuses: Status) -> list[tuple[ProbeResult, Finding]]:
        return [(r, f) for r in self.results for f in r.findings if not statuses or f.status in statuses]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)
