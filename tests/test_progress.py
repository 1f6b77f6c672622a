"""The progress line of long passes: shown late and seldom, on a terminal only, and wiped off pytest's
line so the line reads as if it had never been there."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pytest
from _pytest._io import TerminalWriter
from badfiles import image_bytes

from dsocr_probe.inputs.progress import Progress, TerminalLine


class Shown:
    def __init__(self):
        self.lines: list[str] = []
        self.cleared = 0

    def show(self, text: str) -> None:
        self.lines.append(text)

    def clear(self) -> None:
        self.cleared += 1


def test_progress_waits_then_shows_rate_and_time_left_at_most_every_half_second():
    now = [0.0]
    shown = Shown()
    progress = Progress("images decoded", 1000, shown, show_after_s=3, every_s=0.5, clock=lambda: now[0])
    for _ in range(100):
        now[0] += 0.01
        progress.advance()
    assert shown.lines == []  # one second in: a short pass never shows a line
    now[0] = 4.0
    progress.advance(100)
    now[0] = 4.2
    progress.advance(10)  # too soon after the last one
    assert shown.lines == ["images decoded: 200 / 1 000 (50/s, ~16 s left)"]
    progress.close()
    progress.close()
    now[0] = 9.0
    progress.advance()
    assert shown.cleared == 1 and len(shown.lines) == 1


def test_a_progress_that_never_showed_clears_nothing():
    shown = Shown()
    with Progress("x", 3, shown, show_after_s=60) as progress:
        progress.advance(3)
    assert shown.cleared == 0


class _Plugins:
    def __init__(self, reporter):
        self.reporter = reporter

    def get_plugin(self, name):
        return self.reporter if name == "terminalreporter" else None


class _Config:
    def __init__(self, reporter):
        self.pluginmanager = _Plugins(reporter)


class _Reporter:
    def __init__(self, writer, isatty=True):
        self._tw, self.isatty = writer, isatty


def _screen(raw: str) -> list[str]:
    """What a terminal shows for text with \\r, \\n, ESC[nC (forward), ESC[K (erase to the end), colours."""
    lines, row, col = [[]], 0, 0
    for token in re.findall(r"\x1b\[([\d;]*)([A-Za-z])|(\r)|(\n)|([^\x1b\r\n])", raw):
        count, code, cr, nl, char = token
        if cr:
            col = 0
        elif nl:
            row, col = row + 1, 0
            lines.append([])
        elif code == "C":
            col += int(count or 1)
        elif code == "K":
            del lines[row][col:]
        elif char:
            line = lines[row]
            line.extend(" " * (col - len(line) + 1))
            line[col] = char
            col += 1
    return ["".join(line).rstrip() for line in lines]


def test_the_terminal_line_draws_after_pytests_text_and_wipes_itself_off():
    out = io.StringIO()
    writer = TerminalWriter(out)
    writer.hasmarkup = True
    writer.fullwidth = 80
    writer.write("dsocr-probe ", bold=True)
    writer.write("..", green=True)
    line = TerminalLine(_Config(_Reporter(writer)))
    line.show("images decoded: 10 / 40 (5/s, ~6 s left)")
    assert _screen(out.getvalue()) == ["dsocr-probe ..  images decoded: 10 / 40 (5/s, ~6 s left)"]
    line.show("images decoded: 30 / 40 (5/s, ~2 s left)" + "x" * 100)  # cut to the terminal's width
    assert len(_screen(out.getvalue())[0]) == 79
    line.clear()
    assert writer._current_line == "dsocr-probe .."  # pytest's [ 70%] column still lines up
    assert _screen(out.getvalue()) == ["dsocr-probe .."]
    assert "\x1b[32m" in out.getvalue()  # the green dots were never rewritten


def test_no_terminal_line_without_a_tty():
    out = io.StringIO()
    writer = TerminalWriter(out)
    writer.hasmarkup = True
    line = TerminalLine(_Config(_Reporter(writer, isatty=False)))
    line.show("images decoded: 1 / 2")
    line.clear()
    assert out.getvalue() == ""


@pytest.mark.skipif(os.name != "posix", reason="needs a pseudo-terminal")
def test_a_real_pytest_terminal_shows_the_progress_and_keeps_its_lines(tmp_path):
    import pty

    train = tmp_path / "data" / "train"
    (train / "images").mkdir(parents=True)
    rows = []
    for i in range(30):
        (train / "images" / f"{i}.png").write_bytes(image_bytes("L", (40 + i, 40), "PNG"))
        rows.append({"image_path": f"images/{i}.png", "text": f"page {i}"})
    (train / "metadata.json").write_text(json.dumps(rows), encoding="utf-8")
    (tmp_path / "training.yaml").write_text("training:\n  per_device_train_batch_size: 1\n", encoding="utf-8")

    def run() -> str:
        (tmp_path / "conftest.py").write_text("import dsocr_probe.inputs.progress as p\np.SHOW_AFTER_S = 0\np.EVERY_S = 0\n",
                                              encoding="utf-8")
        leader, follower = pty.openpty()
        env = {**os.environ, "COLUMNS": "100", "PYTHONPATH": os.pathsep.join(sys.path)}
        env.pop("NO_COLOR", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "--dsocr-probe", "-k", "dataset", "--dsocr-data", "data",
             "--dsocr-train-config", "training.yaml", "--dsocr-timeout", "60", "-p", "no:cacheprovider"],
            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env)
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the other end closed
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=120)
        os.close(leader)
        return b"".join(chunks).decode("utf-8", "replace")

    raw = run()
    assert "images decoded: 30 / 30" in raw
    screen = _screen(raw)
    assert not any("images decoded" in line for line in screen)
    # The probe's line as pytest writes it, its percentage column where it would be without the progress.
    (probe_line,) = [line for line in screen if line.startswith("dsocr-probe ")]
    assert re.fullmatch(r"dsocr-probe [.sF] +\[100%\]", probe_line) and len(probe_line) == 99, probe_line
