"""The one data model every probe returns and every renderer reads.

A probe yields :class:`Finding` objects; the plugin wraps them in a :class:`ProbeResult`;
:class:`RunRecord` holds all results of one run and decides the verdict.
"""

from __future__ import annotations

import enum
import traceback
from dataclasses import dataclass, field
from typing import Any, Iterable

from .messages import N_, Rendered, ref, render_text, word


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


class Finding:
    """One fact a probe established, how much it matters, and what to do about it.

    ``code`` is a stable identifier (``probe.what``) used by tests and the JSON twin; ``variant`` names
    which of the code's texts applies and ``params`` are the values they are worded with. The words
    themselves live in the message catalog (:mod:`dsocr_probe.messages`) and are chosen when the report
    is rendered, in its language; ``title``, ``detail`` and ``fix`` are the English ones.
    """

    __slots__ = ("status", "code", "variant", "params", "evidence", "table", "source")

    def __init__(self, status: Status, code: str, variant: str = "", *, params: dict[str, Any] | None = None,
                 evidence: dict[str, Any] | None = None, table: list[dict[str, Any]] | None = None,
                 source: str = ""):
        self.status = status
        self.code = code
        self.variant = variant
        self.params = dict(params or {})
        self.evidence = dict(evidence or {})
        self.table = list(table or [])
        self.source = source

    def replace(self, **changes: Any) -> "Finding":
        """A copy with some of ``status``, ``params``, ``evidence``, ``table`` or ``source`` changed."""
        copy = Finding.__new__(Finding)
        for name in self.__slots__:
            setattr(copy, name, changes.pop(name, getattr(self, name)))
        if changes:
            raise TypeError(f"Finding has no field {sorted(changes)}")
        return copy

    def text(self, lang: str = "en") -> Rendered:
        """The title, detail and fix in ``lang`` (:class:`~dsocr_probe.messages.UnknownMessage` for a
        (code, variant) the catalog lacks: a bug in the probe that made it)."""
        return render_text(self.code, self.variant, self.params, lang)

    @property
    def title(self) -> str:
        return self.text().title

    @property
    def detail(self) -> str:
        return self.text().detail

    @property
    def fix(self) -> str:
        return self.text().fix

    def ref(self) -> dict[str, Any]:
        """This finding as a param of another one (the one it stopped)."""
        return ref(self.code, self.variant, self.params, self.status.value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Finding):
            return NotImplemented
        return self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"Finding({self.status.value}, {self.code!r}, {self.variant!r}, {self.title!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def to_json(self) -> dict[str, Any]:
        text = self.text()
        return {
            "status": self.status.value,
            "code": self.code,
            "variant": self.variant,
            "title": text.title,
            "detail": text.detail,
            "fix": text.fix,
            "evidence": {k: _jsonable(word(v, "en")) for k, v in self.evidence.items()},
            "table": [{k: _jsonable(word(v, "en")) for k, v in row.items()} for row in self.table],
            "source": self.source,
            "params": {k: _jsonable(v) for k, v in self.params.items()},
        }


def passed(code: str, variant: str = "", **kw: Any) -> Finding:
    return Finding(Status.PASS, code, variant, **kw)


def warn(code: str, variant: str = "", **kw: Any) -> Finding:
    return Finding(Status.WARN, code, variant, **kw)


def fail(code: str, variant: str = "", **kw: Any) -> Finding:
    return Finding(Status.FAIL, code, variant, **kw)


def skip(code: str, variant: str = "", **kw: Any) -> Finding:
    return Finding(Status.SKIP, code, variant, **kw)


def cause_params(cause: Finding) -> dict[str, Any]:
    """Params for a finding that only says ``cause`` stopped it: the cause itself, worded in the
    report's language as ``%(cause)s``, ``%(cause_detail)s`` and ``%(cause_fix)s``."""
    return {"cause": cause.ref()}


def probe_error(probe: str, exc: BaseException, *, frames: int = 6) -> Finding:
    """A probe that raised: the exception and its last frames, so the bug can be filed."""
    tb = traceback.extract_tb(exc.__traceback__)[-frames:]
    return Finding(
        Status.ERROR,
        f"{probe}.probe-error",
        params={"probe": probe, "exception": type(exc).__name__, "error": str(exc),
                "traceback": "".join(traceback.format_list(tb)).rstrip()},
        evidence={N_("exception"): f"{type(exc).__module__}.{type(exc).__qualname__}"},
    )


class InputError(Exception):
    """What a service raises when an input cannot be used: a message code, variant and params.

    Services never build findings; the probe layer turns this into one (``status`` says how much it
    weighs there: most broken inputs are a NO-GO, a missing optional one a SKIP).
    """

    def __init__(self, code: str, variant: str = "", *, status: Status = Status.FAIL,
                 evidence: dict[str, Any] | None = None, table: list[dict[str, Any]] | None = None,
                 source: str = "", **params: Any):
        self.code = code
        self.variant = variant
        self.status = status
        self.params = params
        self.evidence = dict(evidence or {})
        self.table = list(table or [])
        self.source = source
        super().__init__(code)

    def __str__(self) -> str:
        return render_text(self.code, self.variant, self.params).title

    def __reduce__(self):
        return (_input_error, (self.code, self.variant, self.status, self.evidence, self.table, self.source,
                               self.params))


def _input_error(code, variant, status, evidence, table, source, params) -> InputError:
    return InputError(code, variant, status=status, evidence=evidence, table=table, source=source, **params)


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
