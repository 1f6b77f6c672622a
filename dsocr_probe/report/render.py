"""The one renderer: a RunRecord becomes a Markdown report and its JSON twin.

Both files are written atomically under a fresh name, so an earlier report is never
overwritten and a killed run leaves no half-written file behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.resources
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import jinja2
from tabulate import tabulate

from ..messages import N_, translations, word
from ..probes.context import Options
from ..findings import Finding, NotRun, RunRecord, Status, Verdict
from ..inputs.target import topic_of

SCHEMA_VERSION = 1
VERDICT_ICON = {Verdict.GO: "✅", Verdict.GO_WITH_WARNINGS: "⚠️", Verdict.NO_GO: "❌", Verdict.INTERRUPTED: "⛔"}


VERDICT_LABELS = {
    Verdict.GO: N_("nothing blocks the run"),
    Verdict.GO_WITH_WARNINGS: N_("the run can start; read the warnings first"),
    Verdict.NO_GO: N_("the run will not start, fit or learn until the blockers below are fixed"),
    Verdict.INTERRUPTED: N_("the run was stopped before the end; no verdict was reached"),
}
# The verdict itself, as the summary line and the report's headline show it.
VERDICT_WORDS = {
    Verdict.GO: N_("GO"),
    Verdict.GO_WITH_WARNINGS: N_("GO with warnings"),
    Verdict.NO_GO: N_("NO-GO"),
    Verdict.INTERRUPTED: N_("INTERRUPTED"),
}
STATUS_LABELS = {
    Status.PASS: N_("pass"),
    Status.WARN: N_("warnings"),
    Status.FAIL: N_("NO-GO"),
    Status.SKIP: N_("skipped"),
    Status.ERROR: N_("probe error"),
}
NOT_RUN_LABELS = {
    NotRun.DESELECTED: N_("left out by -k, -m or --deselect"),
    NotRun.NOT_REACHED: N_("not reached: the run stopped before it (-x or Ctrl-C)"),
    NotRun.INTERRUPTED: N_("interrupted while it ran"),
}
COLUMNS = {
    "probe": N_("Probe"), "status": N_("Status"), "findings": N_("Findings"), "time": N_("Time"),
    "what": N_("What"), "value": N_("Value"), "why": N_("Why"),
}
SECONDS = N_("%(seconds)s s")


def environment_rows(env: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [("python", env.get("python")), ("os", env.get("os"))]
    rows += [(dist, v or "—") for dist, v in (env.get("versions") or {}).items()]
    rows.append((N_("torch CUDA build"), env.get("torch_cuda") or "cpu"))
    rows.append((N_("CUDA available"), env.get("cuda_available")))
    for d in env.get("devices") or []:
        gib = d["total_memory_bytes"] / 2**30
        rows.append((f"cuda:{d['index']}", f"{d['name']} ({d['sm']}, {gib:.1f} GiB, bf16={d['bf16']})"))
    if env.get("arch_list"):
        rows.append((N_("torch arch list"), " ".join(env["arch_list"])))
    return rows


STALE_TEMPORARY_S = 3600  # no report takes this long to write
# The Markdown shows this many rows of a finding's table; the JSON twin keeps them all.
MAX_TABLE_ROWS = 50
# ... and this many characters of one cell (an 18 000-row duplicate list would make one cell of 240 000).
MAX_CELL_CHARS = 300


def _md_table(rows: list[dict[str, Any]] | list[tuple], headers: Any = "keys") -> str:
    if rows and isinstance(rows[0], dict):
        rows = [{k: capped(v) for k, v in row.items()} for row in rows]
    else:
        rows = [tuple(capped(v) for v in row) for row in rows]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def capped(value: Any, limit: int = MAX_CELL_CHARS) -> Any:
    """A table cell cut to ``limit`` characters, saying how many were left out."""
    if value is None or isinstance(value, (int, float, bool)):
        return value
    text = str(value)
    if len(text) <= limit:
        return value
    return f"{text[:limit]}… ({len(text) - limit} more)"


def _localized(f: Finding, lang: str) -> dict[str, Any]:
    text = f.text(lang)
    _ = translations(lang).gettext
    evidence = [(_(key), word(value, lang)) for key, value in f.evidence.items()]
    table = [{_(key): word(value, lang) for key, value in row.items()} for row in f.table[:MAX_TABLE_ROWS]]
    return {
        "icon": f.status.icon,
        "status": f.status.value,
        "code": f.code,
        "title": text.title,
        "detail": text.detail,
        "fix": text.fix,
        "source": f.source,
        "evidence": _md_table(evidence, headers=("", "")) if evidence else "",
        "table": _md_table(table) if table else "",
        "rows_not_shown": max(0, len(f.table) - MAX_TABLE_ROWS),
    }


def render_markdown(record: RunRecord, options: Options, when: dt.datetime) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(importlib.resources.files("dsocr_probe.templates"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    tr = translations(options.lang)
    env.install_gettext_translations(tr, newstyle=True)
    _ = tr.gettext
    col = {key: _(label) for key, label in COLUMNS.items()}
    verdict = record.verdict
    not_run = [{col["probe"]: _(title), col["why"]: _(NOT_RUN_LABELS[why])} for _n, title, why in record.not_run()]
    summary = [
        {
            col["probe"]: _(r.title),
            col["status"]: f"{r.status.icon} {_(STATUS_LABELS[r.status])}",
            col["findings"]: _counts(r.findings),
            col["time"]: _(SECONDS) % {"seconds": f"{r.duration_s:.2f}"},
        }
        for r in record.results
    ]
    blockers = [(_(r.title), _localized(f, options.lang)) for r, f in record.findings(*record.blocking)]
    warnings = [] if record.strict else [(_(r.title), _localized(f, options.lang)) for r, f in record.findings(Status.WARN)]
    return env.get_template("report.md.j2").render(
        verdict=_(VERDICT_WORDS[verdict]),
        verdict_label=_(VERDICT_LABELS[verdict]),
        verdict_icon=VERDICT_ICON[verdict],
        ran=len(record.results),
        planned=len(record.planned) or len(record.results),
        partial=record.partial and not record.interrupted,
        interrupted=record.interrupted,
        running=next((_(title) for name, title, why in record.not_run() if why is NotRun.INTERRUPTED), None),
        strict=record.strict,
        not_run=_md_table(not_run) if not_run else "",
        when=when.strftime("%Y-%m-%d %H:%M:%S"),
        target=record.target,
        replay=bool(record.environment.get("injected")),
        summary=_md_table(summary),
        blockers=blockers,
        warnings=warnings,
        results=[
            {"title": _(r.title), "name": r.name, "icon": r.status.icon, "duration": f"{r.duration_s:.2f}",
             "findings": [_localized(f, options.lang) for f in r.findings]}
            for r in record.results
        ],
        environment=_md_table([(_(k), v) for k, v in environment_rows(record.environment)],
                              headers=(col["what"], col["value"])),
    )


def _counts(findings: list[Finding]) -> str:
    parts = []
    for status in (Status.ERROR, Status.FAIL, Status.WARN, Status.PASS, Status.SKIP):
        n = sum(f.status is status for f in findings)
        if n:
            parts.append(f"{n} {status.icon}")
    return " ".join(parts) or "—"


def render_json(record: RunRecord, options: Options, when: dt.datetime) -> str:
    data = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": when.isoformat(timespec="seconds"),
        "verdict": record.verdict.value,
        "interrupted": record.interrupted,
        "partial": record.partial,
        "strict": record.strict,
        "probes_planned": [name for name, _ in record.planned] or [r.name for r in record.results],
        "probes_not_run": [{"name": name, "title": title, "why": why.value} for name, title, why in record.not_run()],
        "target": record.target,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(options).items()},
        "environment": record.environment,
        "probes": [r.to_json() for r in record.results],
    }
    return json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"


def write(record: RunRecord, options: Options, now: dt.datetime | None = None) -> tuple[Path, Path]:
    """Write REPORT_<topic>_<YYYYMMDD-HHMMSS>.md and .json; never replaces an existing report."""
    when = now or dt.datetime.now()
    folder = options.report_dir
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(folder)
    topic = _topic(record)
    md = render_markdown(record, options, when)
    js = render_json(record, options, when)
    stem = f"REPORT_{topic}_{when:%Y%m%d-%H%M%S}"
    for n in range(1000):
        candidate = stem if n == 0 else f"{stem}-{n}"
        md_path, js_path = folder / f"{candidate}.md", folder / f"{candidate}.json"
        if md_path.exists() or js_path.exists():
            continue
        # The twin goes first: a reader that sees the .md can rely on the .json being there.
        if _publish(js_path, js) and _publish(md_path, md):
            return md_path, js_path
        with contextlib.suppress(FileNotFoundError):
            js_path.unlink()
    raise FileExistsError(f"no free report name for {stem} in {folder}")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_stale_temporaries(folder: Path) -> None:
    """Temporaries left by runs killed mid-report. A recent one may be a live run's, so only old ones go."""
    cutoff = time.time() - STALE_TEMPORARY_S
    for leftover in folder.glob(".REPORT_*.tmp"):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()


def _topic(record: RunRecord) -> str:
    return topic_of(str(record.target.get("name") or "model"))


def _publish(path: Path, text: str) -> bool:
    """Atomically create ``path`` with ``text``; False if it already exists (someone was faster)."""
    with _temporary(path, text) as tmp:
        try:
            os.link(tmp, path)  # fails instead of replacing an existing report
        except FileExistsError:
            return False
        except OSError:  # filesystems without hard links
            if path.exists():
                return False
            os.replace(tmp, path)
    return True


@contextlib.contextmanager
def _temporary(path: Path, text: str) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it private (0600); a report is for the whole team
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()

