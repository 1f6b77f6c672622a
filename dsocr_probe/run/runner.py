"""Running one probe: whatever happens, a result comes back, and a probe past its time limit is ended.

A probe that reads the user's files, imports the checkpoint's code or loads weights can hang (a network
mount, a named pipe, a lock, a dead GPU). Under ``--dsocr-timeout`` such a probe runs in a forked child
process of its own process group. When the limit passes, the child writes the stack where it stopped
(``faulthandler``) and the whole group is killed, so nothing it started keeps the GPU, a file or the
context. What the child learned that later probes reuse (the loaded inputs, the image verdicts) comes
back with its findings.

Where a child cannot be forked (no ``fork`` on the platform, or CUDA already initialised in this
process, which a forked child cannot use), the probe runs here under ``SIGALRM`` and is stopped by an
exception raised where it waits; only without ``SIGALRM`` (Windows) does it fall back to a watched thread
whose worker processes its stop signal (:mod:`dsocr_probe.inputs.stopping`) ends.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import pickle
import signal
import sys
import tempfile
import threading
import time
import traceback
from typing import Any

from .. import probes as probes_mod
from ..inputs import stopping
from ..probes.context import ProbeContext
from ..findings import Finding, InputError, ProbeResult, ProbeStop, Status, probe_error
from ..messages import M, N_
from ..probes.context import finding_of

_STACK_WAIT_S = 2.0  # how long a child that is past its limit gets to write its stack
_STACK_FRAMES = 12


def run_probe(spec: probes_mod.ProbeSpec, ctx: ProbeContext) -> ProbeResult:
    """Run one probe; whatever happens, return a result (never raise, but for Ctrl-C)."""
    start = time.perf_counter()
    limit = ctx.options.timeout_s
    if not (spec.time_limited and limit > 0):
        findings = _collect(spec, ctx)
    elif _can_fork():
        findings = _in_child(spec, ctx, limit)
    elif hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
        findings = _under_alarm(spec, ctx, limit)
    else:
        findings = _in_thread(spec, ctx, limit)
    return ProbeResult(spec.name, spec.title, findings, time.perf_counter() - start)


def _collect(spec: probes_mod.ProbeSpec, ctx: ProbeContext, into: list[Finding] | None = None) -> list[Finding]:
    findings = [] if into is None else into
    try:
        for finding in spec.run(ctx):
            findings.append(finding)
    except ProbeStop as stop:
        findings.append(stop.finding)
    except InputError as error:
        findings.append(finding_of(error))
    except Exception as exc:  # a probe bug (MemoryError too) must not hide the other probes' findings
        findings.append(probe_error(spec.name, exc))
    return findings


def timed_out(spec: probes_mod.ProbeSpec, limit: float, stack: str = "") -> Finding:
    return Finding(
        Status.FAIL,
        f"{spec.name}.timeout",
        evidence={N_("where it stopped"): stack} if stack else {},
        params={"limit": limit, "probe": spec.name, "title": M(spec.title)},
    )


# ---------------------------------------------------------------- in a child process


def _can_fork() -> bool:
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    torch = sys.modules.get("torch")
    return not (torch is not None and torch.cuda.is_initialized())


def _in_child(spec: probes_mod.ProbeSpec, ctx: ProbeContext, limit: float) -> list[Finding]:
    # Imported here once, so each child does not import them again.
    for heavy in ("torch", "transformers"):
        try:
            __import__(heavy)
        except ImportError:
            pass
    # The parent's tokenizers may have used threads; a forked child then warns and turns them off itself.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    fork = multiprocessing.get_context("fork")
    receive, send = fork.Pipe(duplex=False)
    with tempfile.TemporaryFile(mode="w+") as stack_file:
        child = fork.Process(target=_child_main, args=(spec, ctx, send, stack_file.fileno()),
                             name=f"dsocr-probe-{spec.name}")  # not a daemon: it may start processes of its own
        child.start()
        send.close()
        try:
            try:
                payload = _receive(receive, child, time.monotonic() + limit)
            except _ChildDied as died:
                return [_died(spec, died.exitcode)]
            if payload is None:
                stack = _stack_of(child, stack_file)
                _end(child)
                if getattr(ctx, "display", None) is not None:
                    ctx.display.clear(drawn_elsewhere=True)  # a progress line the child left half drawn
                return [timed_out(spec, limit, stack)]
            findings, state = payload
            _adopt(ctx, state)
            return findings
        finally:
            _end(child)
            receive.close()


def _child_main(spec: probes_mod.ProbeSpec, ctx: ProbeContext, send: Any, stack_fd: int) -> None:
    os.setpgid(0, 0)  # its own group: ending it ends what it started (loaders, DataLoader workers)
    _one_cpu_thread()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, _leave)  # asked to end: unwind, so what the probe started is ended and reaped
    faulthandler.register(signal.SIGUSR1, file=os.fdopen(os.dup(stack_fd), "w"), all_threads=True)
    before = _state(ctx)
    findings = _collect(spec, ctx)
    after = _state(ctx)
    changed = {k: v for k, v in after.items() if k not in before or before[k] is not v}
    send.send_bytes(_payload(findings, changed))
    send.close()


def _leave(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _one_cpu_thread() -> None:
    # GNU OpenMP's thread pool does not survive fork: a child entering a parallel region the parent
    # already ran hangs for good. On one thread torch never enters the pool (GPU work is unaffected;
    # a CPU step under --dsocr-timeout measures one thread's time).
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _state(ctx: ProbeContext) -> dict[str, Any]:
    # What a probe leaves on the context for the next ones: options, facts, loaded inputs, image verdicts.
    return {k: v for k, v in vars(ctx).items() if k in ("options", "_facts", "_image_facts") or k.startswith("_cache_")}


def _payload(findings: list[Finding], state: dict[str, Any]) -> bytes:
    sendable = {}
    for key, value in state.items():
        try:  # a weightless model of remote-code classes may not pickle: the next probe builds it again
            sendable[key] = pickle.dumps(value)
        except Exception:
            continue
    try:
        return pickle.dumps((findings, sendable))
    except Exception:  # evidence holding an object that does not pickle: send what the report shows
        plain = [f.replace(evidence=_plain(f.evidence), params=_plain(f.params),
                           table=[_plain(row) for row in f.table]) for f in findings]
        return pickle.dumps((plain, sendable))


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) else str(v) for k, v in values.items()}


def _adopt(ctx: ProbeContext, state: dict[str, bytes]) -> None:
    for key, blob in state.items():
        try:
            vars(ctx)[key] = pickle.loads(blob)
        except Exception:  # a class this process cannot import: the next probe that needs it loads it again
            continue


def _receive(receive: Any, child: Any, deadline: float) -> tuple[list[Finding], dict[str, bytes]] | None:
    """The child's findings and state, or None when the deadline passed first."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if receive.poll(min(left, 0.5)):
            try:
                return pickle.loads(receive.recv_bytes())
            except EOFError:
                break
        if not child.is_alive() and not receive.poll(0):
            break
    child.join()
    raise _ChildDied(child.exitcode)


class _ChildDied(Exception):
    def __init__(self, exitcode: int | None):
        super().__init__(exitcode)
        self.exitcode = exitcode


def _died(spec: probes_mod.ProbeSpec, exitcode: int | None) -> Finding:
    how = (f"signal {signal.Signals(-exitcode).name}" if exitcode is not None and exitcode < 0
           else f"exit status {exitcode}")
    return Finding(
        Status.FAIL,  # like a hang: this run would end the same way
        f"{spec.name}.process-died",
        evidence={N_("exit"): how},
        params={"how": how, "probe": spec.name, "title": M(spec.title)},
    )


def _stack_of(child: Any, stack_file: Any) -> str:
    """Ask the child for its stack (``faulthandler`` on SIGUSR1) and wait until the dump stops growing."""
    try:
        os.kill(child.pid, signal.SIGUSR1)
    except ProcessLookupError:
        return ""
    deadline, size, text = time.monotonic() + _STACK_WAIT_S, -1, ""
    while time.monotonic() < deadline:
        time.sleep(0.1)
        stack_file.seek(0)
        text = stack_file.read()
        if text and len(text) == size:
            break
        size = len(text)
    return _probe_frames(text)


def _probe_frames(dump: str) -> str:
    """The innermost frames of the thread that ran the probe, down to where this module called it."""
    for block in dump.strip().split("\n\n"):
        lines = [ln.strip() for ln in block.splitlines() if ln.strip().startswith("File")]
        if any("_child_main" in ln for ln in lines):
            inner = []
            for line in lines:  # most recent call first
                if __file__ in line:
                    break
                inner.append(line)
            return "\n".join(inner[:_STACK_FRAMES])
    return ""


def _end(child: Any) -> None:
    """End the child: first asked (SIGTERM: it unwinds and reaps the processes it started), then its whole
    process group killed, which also takes what it could not reap."""
    if child.is_alive():
        child.terminate()
        child.join(_STACK_WAIT_S)
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    child.join(5)


# ---------------------------------------------------------------- in this process


class _TimeLimit(BaseException):
    """Raised where the probe waits when its time is up (a BaseException: ``except Exception`` in the
    probe does not swallow it)."""


def _under_alarm(spec: probes_mod.ProbeSpec, ctx: ProbeContext, limit: float) -> list[Finding]:
    def alarm(signum: int, frame: Any) -> None:
        raise _TimeLimit

    findings: list[Finding] = []
    stop = stopping.StopSignal()
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        stopping.bound(stop, lambda: _collect(spec, ctx, findings))()
    except _TimeLimit as hung:
        stop.fire()  # what the probe started in other processes ends with it
        frames = traceback.format_tb(hung.__traceback__)[-_STACK_FRAMES:]
        return findings + [timed_out(spec, limit, "".join(frames).rstrip())]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return findings


def _in_thread(spec: probes_mod.ProbeSpec, ctx: ProbeContext, limit: float) -> list[Finding]:
    # The last resort (no fork, no SIGALRM): the thread cannot be stopped, but the worker processes it
    # started are ended by its stop signal.
    findings: list[Finding] = []
    stop = stopping.StopSignal()
    worker = threading.Thread(target=stopping.bound(stop, lambda: _collect(spec, ctx, findings)),
                              name=f"dsocr-probe-{spec.name}")  # not a daemon: it may start processes of its own
    worker.start()
    try:
        worker.join(limit)
    except BaseException:  # Ctrl-C
        stop.fire()
        raise
    if worker.is_alive():
        stop.fire()
        frame = sys._current_frames().get(worker.ident)
        stack = "".join(traceback.format_stack(frame)[-_STACK_FRAMES:]).rstrip() if frame else ""
        return list(findings) + [timed_out(spec, limit, stack)]
    return findings
