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
    """Everything one ``pytest --dsocr-probe`` run found, in probe order."""

    target: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    results: list[ProbeResult] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        statuses = [r.status for r in self.results]
        if any(s.blocks for s in statuses):
            return Verdict.NO_GO
        if Status.WARN in statuses:
            return Verdict.GO_WITH_WARNINGS
        return Verdict.GO

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
