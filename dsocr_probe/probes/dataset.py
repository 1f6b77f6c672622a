"""Probe 9: the dataset rows — files exist and decode, targets are usable, splits don't leak."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from typing import Iterable

from ..inputs.dataset import WINDOWS_ABSOLUTE
from ..inputs.images import MISSING
from ..inputs.samples import target_tokens
from ..findings import Finding, ProbeStop, cause_params, fail, passed, skip, warn

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
        counts.append({"split": split.name, "metadata": str(split.metadata), "rows": len(split.rows) + sum(p.index is not None for p in split.problems)})
        for row in split.rows:
            if not row.text.strip():
                bad.append(_row(split.name, row.image, row.index, "empty target text: nothing to learn"))
            by_text[row.text.strip()].append((split.name, row.index))
            info = ctx.image_facts(row.image)
            if info == MISSING:
                info = _missing(row)
            if isinstance(info, str):
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
                odd.append(_row(split.name, row.image, row.index, f"tiny image {w}x{h}: text will be unreadable after resizing"))
            elif max(w, h) / min(w, h) > MAX_ASPECT:
                odd.append(_row(split.name, row.image, row.index, f"extreme aspect ratio {w}x{h}: padded to a square, the text shrinks to a sliver"))
    yield passed("dataset.splits", "Dataset splits read", table=counts, evidence=_size_evidence(modes, sizes))
    train = data.train
    if train is None:
        yield fail("dataset.no-train-rows", f"No train split in {data.root}: nothing to train on",
                   detail="Splits found: " + (", ".join(data.splits) or "none") + ".",
                   fix="Put the training rows in train/metadata.json (or name train_dir in the config's data section).",
                   params={"folder": str(data.root), "splits": ", ".join(data.splits) or "—"})
    elif not usable[train.name]:
        yield fail("dataset.no-train-rows", f"The train split has no usable rows ({train.metadata})",
                   detail="A run with zero training rows stops before its first step, or trains on nothing.",
                   fix="Add rows to the train split's metadata file, or fix the ones listed as unusable.",
                   params={"metadata": str(train.metadata)})
    if bad:
        yield fail(
            "dataset.bad-rows",
            f"{len(bad)} row(s) cannot be used: training would stop at the first one",
            table=bad,
            fix="Fix or remove each listed row in its metadata file; the batch builder refuses them rather than skip them.",
            params={"n": len(bad)},
        )
    if odd:
        yield warn("dataset.odd-images", f"{len(odd)} image(s) will train poorly", table=odd,
                   fix="Re-scan or crop these pages, or drop them from the metadata file.", params={"n": len(odd)})
    yield from _notes(data.all_notes())
    yield from _duplicates(by_hash, by_text)
    yield from _lengths(ctx, data, page_sizes)


def _row(split: str, file, index: int | None, reason: str) -> dict:
    return {"split": split, "file": str(file), "row": "-" if index is None else index, "reason": reason}




def _missing(row) -> str:
    if os.sep != "\\" and WINDOWS_ABSOLUTE.match(row.written):
        return f"{MISSING}: {row.written} is a Windows absolute path, which cannot be read on this system"
    if row.also_tried:
        return f"{MISSING} (neither {row.image} nor, as written with \\, {row.also_tried})"
    return MISSING


_NOTE_FINDINGS = {
    "ambiguous": ("dataset.ambiguous", "{n} choice(s) made between candidates: the ones not read are listed",
                  "Keep one metadata file per folder, one folder per split, one list of rows and each key once per row, "
                  "so every reader of the dataset sees the same rows."),
    "windows-path": ("dataset.windows-paths", "{n} image path(s) written with Windows separators (\\) read with /",
                     "Write / in metadata files: it works on every OS, while a training script that opens these paths "
                     "as written fails on Linux and macOS."),
    "outside": ("dataset.outside-folder", "{n} image path(s) leave the dataset folder through '..'",
                "Keep the images under the dataset folder (or write absolute paths on purpose): a copied or mounted "
                "dataset loses them."),
}


def _notes(notes) -> Iterable[Finding]:
    for kind, (code, title, fix) in _NOTE_FINDINGS.items():
        these = [n for n in notes if n.kind == kind]
        if these:
            yield warn(code, title.format(n=len(these)), fix=fix, params={"n": len(these)},
                       table=[_row(n.split, n.file, n.index, n.text) for n in these])


def _size_evidence(modes: Counter, sizes: list[tuple[int, int]]) -> dict:
    if not sizes:
        return {}
    widths, heights = [s[0] for s in sizes], [s[1] for s in sizes]
    return {
        "decoded images": len(sizes),
        "modes": ", ".join(f"{m} x{n}" for m, n in modes.most_common()),
        "width min/max": f"{min(widths)} / {max(widths)}",
        "height min/max": f"{min(heights)} / {max(heights)}",
    }


def _duplicates(by_hash, by_text) -> Iterable[Finding]:
    leaks, dups = [], []
    for kind, groups in (("image", by_hash), ("text", by_text)):
        for rows in groups.values():
            if len(rows) < 2:
                continue
            where = ", ".join(f"{s}[{i}]" for s, i in rows)
            (leaks if len({s for s, _ in rows}) > 1 else dups).append({"same": kind, "rows": where})
    if leaks:
        yield warn(
            "dataset.split-overlap",
            f"{len(leaks)} item(s) appear in more than one split",
            detail="Validation loss on samples the model trains on measures memory, not reading.",
            table=leaks,
            fix="Keep each page (and each target text) in one split only.",
            params={"n": len(leaks)},
        )
    if dups:
        yield warn("dataset.duplicates", f"{len(dups)} duplicated item(s) within a split", table=dups,
                   fix="Remove the repeated rows, or keep them on purpose as oversampling.", params={"n": len(dups)})


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
        yield skip("dataset.lengths", f"Target lengths not measured: {stop.finding.title}", fix=stop.finding.fix,
                   params=cause_params(stop.finding))
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
                total, reason = target, f"target is {target} tokens > max_length {max_length}"
            else:
                total = before + target
                totals.append(total)
                reason = (f"needs {total} tokens ({before} for bos, prompt and image slots + {target} for the target "
                          f"and eos) > max_length {max_length}")
            if total > int(max_length):
                too_long.append(_row(split.name, row.image, row.index, reason))
    if not targets:
        return
    evidence = {"target tokens min/median/max": _spread(targets)}
    if totals:
        evidence["sample tokens min/median/max"] = _spread(totals)
        evidence["counted before the target"] = f"bos, prompt and image slots ({type(builder).__name__})"
    evidence["max_length"] = max_length
    if too_long:
        longest = max(totals or targets)
        yield fail(
            "dataset.too-long",
            f"{len(too_long)} sample(s) exceed max_length {max_length}",
            detail="Truncating a target teaches the model to stop mid-page; the batch builder refuses such rows.",
            table=too_long,
            evidence=evidence,
            fix=f"Raise data.max_length to at least {longest}, use a mode with fewer image slots, or split these pages."
            if totals else
            f"Raise data.max_length to at least {longest} plus the prompt and image tokens, or split these pages.",
            params={"n": len(too_long), "max_length": max_length, "longest": longest,
                    "longest_whole": longest if totals else None},  # set when the whole sample was counted
        )
    else:
        yield passed("dataset.lengths", "Samples fit max_length" if totals else "Target lengths fit", evidence=evidence)


def _spread(values: list[int]) -> str:
    ordered = sorted(values)
    return f"{ordered[0]} / {ordered[len(ordered) // 2]} / {ordered[-1]}"


def _builder_or_none(ctx):
    """The verified batch builder, for its layout; None when it cannot be made (the batch probe says why)."""
    from ..findings import InputError
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
