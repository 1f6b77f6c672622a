"""Probe 9: the dataset rows — files exist and decode, targets are usable, splits don't leak."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from typing import Iterable

from ..inputs.dataset import WINDOWS_ABSOLUTE
from ..inputs.images import MISSING
from ..inputs.samples import target_tokens
from ..findings import Finding, InputError, ProbeStop, fail, passed, skip, warn
from ..messages import M, N_

# Pages outside these bounds still train, but badly: text too small to read, or memory blown.
MIN_SIDE = 32
MAX_ASPECT = 20.0


def run(ctx) -> Iterable[Finding]:
    data = ctx.require(ctx.dataset, "dataset")
    bad: list[dict] = []  # rows that will crash the batch builder
    odd: list[dict] = []  # rows that train, but deserve a look
    modes: Counter[str] = Counter()
    sizes: list[tuple[int, int]] = []
    page_sizes: dict[tuple[str, int], tuple[int, int]] = {}  # (split, row) -> page size, as the builder sees it
    by_hash: dict[str, list[tuple[str, int]]] = defaultdict(list)
    by_text: dict[str, list[tuple[str, int]]] = defaultdict(list)
    counts = []
    usable: Counter[str] = Counter()  # rows per split that neither the loader nor this probe refused
    ctx.inspect_images(row.image for split in data.splits.values() for row in split.rows)  # one pass, all cores
    for split in data.splits.values():
        for p in split.problems:
            bad.append(_row(split.name, p.file, p.index, p.reason))
        counts.append({N_("split"): split.name, N_("metadata"): str(split.metadata),
                       N_("rows"): len(split.rows) + sum(p.index is not None for p in split.problems)})
        for row in split.rows:
            if not row.text.strip():
                bad.append(_row(split.name, row.image, row.index, M(N_("empty target text: nothing to learn"))))
            by_text[row.text.strip()].append((split.name, row.index))
            info = ctx.image_facts(row.image)
            if info == MISSING:
                info = _missing(row)
            if not isinstance(info, tuple):  # why the image is refused
                bad.append(_row(split.name, row.image, row.index, info))
                continue
            mode, size, digest = info
            modes[mode] += 1
            sizes.append(size)
            page_sizes[split.name, row.index] = size
            by_hash[digest].append((split.name, row.index))
            usable[split.name] += bool(row.text.strip())
            w, h = size
            if min(w, h) < MIN_SIDE:
                odd.append(_row(split.name, row.image, row.index, M(N_("tiny image %(width)dx%(height)d: text will be "
                                                                       "unreadable after resizing"), width=w, height=h)))
            elif max(w, h) / min(w, h) > MAX_ASPECT:
                odd.append(_row(split.name, row.image, row.index, M(N_("extreme aspect ratio %(width)dx%(height)d: padded "
                                                                       "to a square, the text shrinks to a sliver"),
                                                                    width=w, height=h)))
    yield passed("dataset.splits", table=counts, evidence=_size_evidence(modes, sizes))
    train = data.train
    if train is None:
        yield fail("dataset.no-train-rows", "no-split",
                   params={"folder": str(data.root), "splits": ", ".join(data.splits) or M(N_("none"))})
    elif not usable[train.name]:
        yield fail("dataset.no-train-rows", "no-rows", params={"metadata": str(train.metadata)})
    if bad:
        yield fail("dataset.bad-rows", table=bad, params={"n": len(bad)})
    if odd:
        yield warn("dataset.odd-images", table=odd, params={"n": len(odd)})
    yield from _notes(data.all_notes())
    yield from _duplicates(by_hash, by_text)
    yield from _lengths(ctx, data, page_sizes)


def _row(split: str, file, index: int | None, reason: dict) -> dict:
    return {N_("split"): split, N_("file"): str(file), N_("row"): "-" if index is None else index, N_("reason"): reason}


def _missing(row) -> dict:
    if os.sep != "\\" and WINDOWS_ABSOLUTE.match(row.written):
        return M(N_("image file does not exist: %(written)s is a Windows absolute path, which cannot be read on this "
                    "system"), written=row.written)
    if row.also_tried:
        return M(N_("image file does not exist (neither %(image)s nor, as written with \\, %(also)s)"),
                 image=str(row.image), also=str(row.also_tried))
    return MISSING


_NOTE_FINDINGS = {"ambiguous": "dataset.ambiguous", "windows-path": "dataset.windows-paths",
                  "outside": "dataset.outside-folder"}


def _notes(notes) -> Iterable[Finding]:
    for kind, code in _NOTE_FINDINGS.items():
        these = [n for n in notes if n.kind == kind]
        if these:
            yield warn(code, params={"n": len(these)}, table=[_row(n.split, n.file, n.index, n.text) for n in these])


def _size_evidence(modes: Counter, sizes: list[tuple[int, int]]) -> dict:
    if not sizes:
        return {}
    widths, heights = [s[0] for s in sizes], [s[1] for s in sizes]
    return {
        N_("decoded images"): len(sizes),
        N_("modes"): ", ".join(f"{m} x{n}" for m, n in modes.most_common()),
        N_("width min/max"): f"{min(widths)} / {max(widths)}",
        N_("height min/max"): f"{min(heights)} / {max(heights)}",
    }


def _duplicates(by_hash, by_text) -> Iterable[Finding]:
    leaks, dups = [], []
    for kind, groups in ((M(N_("image")), by_hash), (M(N_("text")), by_text)):
        for rows in groups.values():
            if len(rows) < 2:
                continue
            where = ", ".join(f"{s}[{i}]" for s, i in rows)
            (leaks if len({s for s, _ in rows}) > 1 else dups).append({N_("same"): kind, N_("rows"): where})
    if leaks:
        yield warn("dataset.split-overlap", table=leaks, params={"n": len(leaks)})
    if dups:
        yield warn("dataset.duplicates", table=dups, params={"n": len(dups)})


def _lengths(ctx, data, page_sizes: dict[tuple[str, int], tuple[int, int]]) -> Iterable[Finding]:
    """Each sample's length against max_length: bos, prompt and the page's image slots (from the
    batch builder's layout, where it knows them without the processor) plus the target and eos."""
    cfg = _config_or_none(ctx)
    max_length = (cfg.data.get("max_length") if cfg else None) or (cfg.training.get("max_length") if cfg else None)
    if not max_length:
        return  # lengths only matter against a configured limit; no need to load a tokenizer
    try:
        tokenizer = ctx.tokenizer()
    except ProbeStop as stop:
        yield skip("dataset.lengths", "not-measured", params={"cause": stop.finding.ref()})
        return
    builder = _builder_or_none(ctx)
    targets, totals, too_long = [], [], []
    for split in data.splits.values():
        for row in split.rows:
            target = target_tokens(tokenizer, row.text)
            targets.append(target)
            size = page_sizes.get((split.name, row.index))
            before = builder.tokens_before_target(*size) if builder is not None and size else None
            if before is None:
                total = target
                reason = M(N_("target is %(target)d tokens > max_length %(max_length)s"), target=target,
                           max_length=max_length)
            else:
                total = before + target
                totals.append(total)
                reason = M(N_("needs %(total)d tokens (%(before)d for bos, prompt and image slots + %(target)d for the "
                              "target and eos) > max_length %(max_length)s"), total=total, before=before, target=target,
                           max_length=max_length)
            if total > int(max_length):
                too_long.append(_row(split.name, row.image, row.index, reason))
    if not targets:
        return
    evidence = {N_("target tokens min/median/max"): _spread(targets)}
    if totals:
        evidence[N_("sample tokens min/median/max")] = _spread(totals)
        evidence[N_("counted before the target")] = M(N_("bos, prompt and image slots (%(builder)s)"),
                                                      builder=type(builder).__name__)
    evidence["max_length"] = max_length
    if too_long:
        # the fix follows what was counted: whole samples, or only their targets
        yield fail("dataset.too-long", "samples" if totals else "targets", table=too_long, evidence=evidence,
                   params={"n": len(too_long), "max_length": max_length, "longest": max(totals or targets)})
    else:
        yield passed("dataset.lengths", "samples" if totals else "targets", evidence=evidence)


def _spread(values: list[int]) -> str:
    ordered = sorted(values)
    return f"{ordered[0]} / {ordered[len(ordered) // 2]} / {ordered[-1]}"


def _builder_or_none(ctx):
    """The verified batch builder, for its layout; None when it cannot be made (the batch probe says why)."""
    from ..model import loading

    try:
        return loading.builder_for(ctx)
    except (ProbeStop, InputError):
        return None


def _config_or_none(ctx):
    try:
        return ctx.train_config()
    except ProbeStop:
        return None
