"""What the run prints on the terminal: the verdict line, the skip reasons and failures of the probe
items, and the summary section at the end, in the report's language."""

from __future__ import annotations

from pathlib import Path

from ..findings import ProbeResult, RunRecord, Status
from ..messages import N_, translations
from .render import VERDICT_WORDS

NOT_RUN_WORDS = {"deselected": N_("deselected"), "not reached": N_("not reached"), "interrupted": N_("interrupted")}


def verdict_line(record: RunRecord, lang: str = "en") -> str:
    """The verdict in one line, with how much of the plan it covers."""
    tr = translations(lang)
    planned = len(record.planned) or len(record.results)
    ran = len(record.results)
    if record.interrupted:
        if record.running:
            title = next((t for name, t in record.planned if name == record.running), record.running)
            return tr.ngettext("INTERRUPTED during the %(probe)s probe: no verdict (%(num)d of %(planned)d probe "
                               "finished)", "INTERRUPTED during the %(probe)s probe: no verdict (%(num)d of "
                               "%(planned)d probes finished)", planned) % {
                "probe": tr.gettext(title), "num": ran, "planned": planned}
        return tr.ngettext("INTERRUPTED: no verdict (%(num)d of %(planned)d probe finished)",
                           "INTERRUPTED: no verdict (%(num)d of %(planned)d probes finished)", planned) % {
            "num": ran, "planned": planned}
    verdict = tr.gettext(VERDICT_WORDS[record.verdict])
    if record.partial:
        return tr.ngettext("%(verdict)s for the %(num)d of %(planned)d probe that ran",
                           "%(verdict)s for the %(num)d of %(planned)d probes that ran", planned) % {
            "verdict": verdict, "num": ran, "planned": planned}
    return verdict


def skip_reason(result: ProbeResult, lang: str = "en") -> str:
    return "; ".join(f.text(lang).title for f in result.findings) or translations(lang).gettext(N_("nothing to check"))


def describe(result: ProbeResult, lang: str = "en") -> str:
    """A failed probe item, as pytest shows it."""
    tr = translations(lang)
    lines = [f"{tr.gettext(result.title)}: {result.status.icon} {result.status.value.upper()}"]
    for f in result.findings:
        if f.status in (Status.PASS, Status.SKIP):
            continue
        text = f.text(lang)
        lines.append(f"  {f.status.icon} {text.title}")
        if text.detail:
            lines.extend("      " + line for line in text.detail.splitlines())
        if text.fix:
            lines.append("      " + tr.gettext(N_("fix: %(fix)s")) % {"fix": text.fix})
    return "\n".join(lines)


def summary_lines(record: RunRecord, md: Path, js: Path, lang: str = "en") -> list[tuple[str, bool]]:
    """The lines of the terminal summary section, each with whether it is bold."""
    tr = translations(lang)
    _ = tr.gettext
    lines = [(_(N_("verdict: %(verdict)s")) % {"verdict": verdict_line(record, lang)}, True)]
    if record.strict:
        lines.append(("  " + _(N_("(--dsocr-strict: warnings block)")), False))
    for result, f in record.findings(Status.FAIL, Status.ERROR, Status.WARN):
        lines.append((f"  {f.status.icon} [{result.name}] {f.text(lang).title}", False))
    not_run = record.not_run()
    if not_run:
        listed = ", ".join(f"{name} ({_(NOT_RUN_WORDS[why.value])})" for name, _t, why in not_run)
        lines.append((_(N_("not run: %(probes)s")) % {"probes": listed}, False))
    lines.append((_(N_("report: %(path)s")) % {"path": md}, False))
    lines.append((_(N_("json:   %(path)s")) % {"path": js}, False))
    return lines
