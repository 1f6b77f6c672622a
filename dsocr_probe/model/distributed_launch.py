"""Start N ranks of :mod:`dsocr_probe.run.distributed_worker` with torch's own launcher, on this machine, and
bring back what each rank wrote, the launcher's failure report, and a machine with nothing left running.

    outcome = launch(spec, nproc=2, limit_s=300)

The launcher (``python -m torch.distributed.run``) runs in a session of its own and each rank in
another (torch starts them so); the ranks record their pids as they start. However the run ends
(finished, a rank crashed, the time limit hit) every recorded process group is killed and checked
gone before this returns, so a hung rank is a finding, never a hung gate.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORKER = "dsocr_probe.run.distributed_worker"
GRACE_S = 5.0
# The launcher, ``python -m torch.distributed.run``, started so that on Linux it gets SIGTERM when the thread that
# started it goes (pytest ended by Ctrl-C or a time limit); it then stops its ranks, which die with it in any case
# (see the worker). A preexec_fn would do the same but forces a fork that tokenizers warns about.
_BOOT = ("import runpy, signal, sys\n"
         "if sys.platform.startswith('linux'):\n"
         "    import ctypes\n"
         "    ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
         "runpy.run_module('torch.distributed.run', run_name='__main__', alter_sys=True)\n")  # after the limit: SIGTERM to the launcher, then this long before SIGKILL to everything


@dataclass
class Outcome:
    """One launch: each rank's JSON (absent: it never wrote one), the launcher's exit and report."""

    nproc: int
    ranks: dict[int, dict[str, Any]] = field(default_factory=dict)
    returncode: int | None = None
    timed_out: bool = False
    limit_s: float = 0.0
    elapsed_s: float = 0.0
    report: str = ""  # the launcher's "Root Cause" block, when it has one
    failed_rank: int | None = None  # the rank the launcher names first
    failed_exitcode: int | None = None
    rank_logs: dict[int, str] = field(default_factory=dict)  # the end of each rank's stderr
    launcher_log: str = ""
    survivors: list[int] = field(default_factory=list)  # pids still running after the clean-up
    where: dict[int, str] = field(default_factory=dict)  # a rank that overran: its innermost Python frame
    command: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.returncode == 0 and not self.timed_out
                and all(self.ranks.get(r, {}).get("finished") for r in range(self.nproc)))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_environment(nproc: int, device: str) -> dict[str, str]:
    """The ranks' environment: this process's, offline and loopback-only, one CPU share each."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_root, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    if not device.startswith("cuda"):
        threads = str(max(1, (os.cpu_count() or 1) // nproc))
        env.setdefault("OMP_NUM_THREADS", threads)  # N ranks on the cores this machine has, not N x all of them
        env.setdefault("MKL_NUM_THREADS", threads)
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # no lookup of the host's name: the loopback device
    env.setdefault("TORCH_DISTRIBUTED_DEBUG", "INFO")  # DDP's errors then name the parameters
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def launch(spec: dict[str, Any], nproc: int, limit_s: float, device: str = "cpu") -> Outcome:
    with tempfile.TemporaryDirectory(prefix="dsocr-distributed-") as tmp:
        folder = Path(tmp)
        (folder / "logs").mkdir()
        spec_path = folder / "spec.json"
        spec_path.write_text(json.dumps({**spec, "folder": str(folder), "device": device}, default=str),
                             encoding="utf-8")
        flags = _known_flags()
        command = [sys.executable, "-c", _BOOT, "--nnodes=1", f"--nproc_per_node={nproc}",
                   "--master_addr=127.0.0.1", f"--master_port={free_port()}",
                   *(["--local_addr=127.0.0.1"] if "--local_addr" in flags else []),  # no lookup of the host's name
                   "--max_restarts=0", *(["--monitor_interval=0.2"] if "--monitor_interval" in flags else []),
                   f"--log_dir={folder / 'logs'}", "--redirects=3", "-m", WORKER, str(spec_path)]
        outcome = Outcome(nproc=nproc, limit_s=limit_s, command=command)
        started = time.monotonic()
        with open(folder / "launcher.log", "wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=worker_environment(nproc, device), cwd=os.getcwd(), start_new_session=True)
            try:
                outcome.returncode = proc.wait(limit_s)
            except subprocess.TimeoutExpired:
                outcome.timed_out = True
                _ask_where(folder, nproc)
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(GRACE_S)
                except subprocess.TimeoutExpired:
                    pass
            finally:
                outcome.elapsed_s = time.monotonic() - started
                outcome.ranks = _rank_results(folder, nproc)
                pids = [proc.pid] + [int(r["pid"]) for r in outcome.ranks.values() if r.get("pid")]
                outcome.survivors = _end_all(proc, pids)
        outcome.launcher_log = (folder / "launcher.log").read_text(encoding="utf-8", errors="replace")
        outcome.rank_logs = _rank_logs(folder / "logs")
        outcome.report, outcome.failed_rank, outcome.failed_exitcode = _root_cause(outcome.launcher_log)
        outcome.where = {rank: frame for rank, log in outcome.rank_logs.items() if (frame := innermost_frame(log))}
        return outcome


def _ask_where(folder: Path, nproc: int) -> None:
    """SIGUSR1 to each running rank: its faulthandler writes every thread's stack into its log."""
    if not hasattr(signal, "SIGUSR1"):
        return
    for data in _rank_results(folder, nproc).values():
        pid = int(data.get("pid") or 0)
        if pid and _ours(pid):
            try:
                os.kill(pid, signal.SIGUSR1)
            except (ProcessLookupError, PermissionError):
                pass
    time.sleep(1.0)


_THREAD = re.compile(r"(Current thread|Thread) 0x[0-9a-fA-F]+ \(most recent call first\):\n((?:[ \t]+File .*\n?)+)")
_FRAME = re.compile(r'File "([^"]+)", line (\d+) in (\S+)')


def innermost_frame(log: str) -> str | None:
    """From a rank's stack dump: the innermost frame of the thread the signal ran on (the main thread),
    as ``file:line in function``."""
    threads = _THREAD.findall(log)
    if not threads:
        return None
    frames = next((body for kind, body in reversed(threads) if kind == "Current thread"), threads[-1][1])
    found = _FRAME.search(frames)
    if not found:
        return None
    path = found.group(1).replace("\\", "/")
    path = path.split("site-packages/", 1)[-1] if "site-packages/" in path else Path(path).name
    return f"{path}:{found.group(2)} in {found.group(3)}"


def _known_flags() -> set[str]:
    """The options the installed torch's launcher takes (``--local_addr`` is newer than the others)."""
    try:
        from torch.distributed.run import get_args_parser

        return {s for action in get_args_parser()._actions for s in action.option_strings}
    except Exception:
        return set()


def _rank_results(folder: Path, nproc: int) -> dict[int, dict[str, Any]]:
    out = {}
    for rank in range(nproc):
        path = folder / f"rank{rank}.json"
        try:
            out[rank] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return out


def _rank_logs(logs: Path, keep: int = 3000) -> dict[int, str]:
    """The end of each rank's stderr, from the launcher's per-rank log files (``<run>/attempt_0/<rank>/``)."""
    out = {}
    for path in logs.glob("**/stderr.log"):
        try:
            rank = int(path.parent.name)
        except ValueError:
            continue
        out[rank] = path.read_text(encoding="utf-8", errors="replace")[-keep:]
    return out


_ROOT = re.compile(r"Root Cause \(first observed failure\):(.*?)(?:\n=+|\Z)", re.S)


_FAILURE = re.compile(r"rank\s*:\s*(\d+)[^\n]*\n\s*exitcode\s*:\s*(-?\d+)")


def _root_cause(text: str) -> tuple[str, int | None, int | None]:
    """The launcher's own report of the first failed rank: the block, its rank and exit code.

    The launcher observes first whichever rank wrote its error first. When that rank was only ended by the
    launcher (SIGTERM, after a peer vanished mid-collective) and another rank died of a signal of its own
    (killed for memory, a crash), that one is the cause and is named instead.
    """
    found = _ROOT.search(text)
    if not found:
        return "", None, None
    block = found.group(1).strip("\n")
    rank = re.search(r"rank\s*:\s*(\d+)", block)
    code = re.search(r"exitcode\s*:\s*(-?\d+)", block)
    lines = [line.rstrip() for line in block.splitlines() if line.strip()]
    rank_n, code_n = (int(rank.group(1)) if rank else None), (int(code.group(1)) if code else None)
    if code_n == -signal.SIGTERM:
        for other_rank, other_code in _FAILURE.findall(text):
            if int(other_code) < 0 and int(other_code) != -signal.SIGTERM:
                rank_n, code_n = int(other_rank), int(other_code)
                break
    return "\n".join(lines), rank_n, code_n


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _end_all(proc: subprocess.Popen, pids: list[int]) -> list[int]:
    """SIGKILL the launcher's and every rank's process group (each is a session leader), reap the launcher,
    and return the pids still running after that."""
    for pid in pids:
        # A rank that already ended may have left processes of its group (DataLoader workers): the group
        # is killed too. A live process that is not ours has reused the number: left alone.
        if pid == proc.pid or _ours(pid) or not running(pid):
            _signal_group(pid, signal.SIGKILL)
    try:
        proc.wait(GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        alive = _alive_in(pids)
        if not alive:
            return []
        time.sleep(0.05)
    return _alive_in(pids)


def _alive_in(pids: list[int]) -> list[int]:
    """The pids, and the members of their process groups, still running."""
    import psutil

    groups = set(pids)
    members = []
    for process in psutil.process_iter():
        try:
            if process.pid not in groups and os.getpgid(process.pid) in groups:
                members.append(process.pid)
        except (OSError, psutil.Error):
            continue
    return [pid for pid in [*pids, *members] if running(pid)]


def _ours(pid: int) -> bool:
    """The pid still belongs to one of our ranks (not a new process that reused the number)."""
    try:
        return WORKER.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return not sys.platform.startswith("linux") and running(pid)


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
