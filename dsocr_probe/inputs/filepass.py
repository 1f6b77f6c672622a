"""One function over many files (every row's image), across the machine's cores when that pays.

- Processes, not threads: decoding an image holds the GIL much of the time. Workers are started with
  ``spawn`` on every OS (what macOS and Windows use anyway; no ``fork`` of a process whose other threads
  may hold locks, no server process left behind), so the work function is a top-level function and the
  files and verdicts are picklable.
- A small pass stays in this process: it works alone for :data:`DECIDE_AFTER_S` first, and starts workers
  only when the rest would take longer than :data:`POOL_PAYS_S` here (starting them costs 0.3-0.6 s;
  see bench/bench_dataset.py --crossover).
- Memory is bounded at any number of rows: files go out in chunks, at most :data:`IN_FLIGHT` chunks per
  worker at a time, and what comes back is each file's small verdict.
- The probe's stop signal (its timeout, Ctrl-C) kills the workers at once.
- A worker that dies (a crash in a decoder, the system killing it for memory) does not end the pass: the
  files it may have been reading are tried again one at a time, and the one that ends a worker again
  gets that as its verdict. (A file this process reads itself, in the first quarter second or while the
  workers start, would end this process as a pass without workers does.)
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, TimeoutError, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator

from ..messages import M, N_
from . import stopping

MAX_WORKERS = 8  # each worker holds one decoded page; PIL's pixel limit allows ~360 MB for one
DECIDE_AFTER_S = 0.25
POOL_PAYS_S = 1.5
CHUNK = 16  # files per chunk when their cost is not known yet
CHUNK_S = 0.05
MAX_CHUNK = 256
IN_FLIGHT = 2
WORKER_DIED = M(N_("reading it ended the process that read it (a crash in the decoder, or the system ending the "
                   "process for memory): a data-loader worker that opens this file ends the same way"))


def available_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the whole machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_count(requested: int = 0) -> int:
    """``requested`` processes when given (> 0); else one per available core, at most :data:`MAX_WORKERS`."""
    if requested > 0:
        return requested
    return max(1, min(available_cores(), MAX_WORKERS))


class _Counter:
    def advance(self, n: int = 1) -> None:
        pass


def run(work: Callable[[Any], Any], paths: Iterable[Any], *, workers: int = 0, progress: Any = None,
        initializer: Callable[..., None] | None = None, initargs: tuple = (), method: str = "spawn",
        decide_after_s: float | None = None, pool_pays_s: float | None = None) -> Iterator[tuple[Any, Any]]:
    """``(path, work(path))`` for every path, in no particular order. ``initializer(*initargs)`` runs in
    each worker first (to carry settings the parent changed, such as the decoder's limits)."""
    decide_after_s = DECIDE_AFTER_S if decide_after_s is None else decide_after_s
    pool_pays_s = POOL_PAYS_S if pool_pays_s is None else pool_pays_s
    signal = stopping.current()
    progress = progress or _Counter()
    todo = deque(paths)
    n = worker_count(workers)
    start, done = time.perf_counter(), 0
    while todo and (n == 1 or time.perf_counter() - start < decide_after_s):
        signal.check()
        path = todo.popleft()
        yield path, work(path)
        done += 1
        progress.advance()
    if not todo:
        return
    per_file = (time.perf_counter() - start) / max(done, 1)
    if per_file * len(todo) < pool_pays_s:
        while todo:
            signal.check()
            path = todo.popleft()
            yield path, work(path)
            progress.advance()
        return
    n = min(n, len(todo))
    # About CHUNK_S of work per chunk (header reads go 200 at a time, page decodes a few), and enough
    # chunks that no worker idles at the end.
    chunk = int(CHUNK_S / per_file) if done else CHUNK
    chunk = max(1, min(chunk, MAX_CHUNK, len(todo) // (n * 4)))
    yield from _pooled(work, todo, n, chunk, progress, signal, lambda: _Workers(n, method, initializer, initargs))


def _pooled(work, todo: deque, n: int, chunk: int, progress, signal: stopping.StopSignal, start
            ) -> Iterator[tuple[Any, Any]]:
    pending: dict[Future, list] = {}
    retry: deque = deque()  # files in flight when a worker died; tried one at a time, nothing else in flight
    alone: Future | None = None
    workers = start()
    answered = False  # until the workers' first answer, this process reads files too: starting them takes a while
    finished = False
    with signal.hooked(workers.kill):
        try:
            while todo or pending or retry:
                if retry and not pending:
                    batch = [retry.popleft()]
                    alone = workers.submit(work, batch)
                    pending[alone] = batch
                while not retry and todo and len(pending) < n * IN_FLIGHT:
                    batch = [todo.popleft() for _ in range(min(chunk, len(todo)))]
                    pending[workers.submit(work, batch)] = batch
                done, _ = wait(pending, timeout=0 if not answered and todo else 0.5, return_when=FIRST_COMPLETED)
                if not done and not answered and todo:
                    signal.check()
                    path = todo.pop()
                    yield path, work(path)
                    progress.advance()
                    continue
                answered = answered or bool(done)
                signal.check()
                broken = False
                for future in done:
                    batch = pending.pop(future)
                    try:
                        verdicts = future.result()
                    except BrokenProcessPool:
                        signal.check()  # killed on purpose: the probe was stopped
                        broken = True
                        if future is alone:
                            yield batch[0], WORKER_DIED
                            progress.advance()
                        else:
                            retry.extend(batch)
                        continue
                    yield from zip(batch, verdicts)
                    progress.advance(len(batch))
                if broken:
                    # Every chunk still in flight is lost with the pool: wait for each to say so, then start afresh.
                    for future in list(pending):
                        batch = pending.pop(future)
                        try:
                            verdicts = future.result()
                        except BrokenProcessPool:
                            retry.extend(batch)
                            continue
                        yield from zip(batch, verdicts)
                        progress.advance(len(batch))
                    signal.check()
                    if not workers.restart(signal):
                        # Workers that cannot even start (a script without a __main__ guard, no memory
                        # left for a process): the rest is read here, as with one worker.
                        for path in (*retry, *todo):
                            signal.check()
                            yield path, work(path)
                            progress.advance()
                        retry.clear()
                        todo.clear()
            finished = True
        finally:
            workers.close(finished)


def _work_chunk(work: Callable[[Any], Any], paths: list) -> list:
    return [work(path) for path in paths]


def _ready() -> bool:
    return True


def _start_worker(initializer, initargs) -> None:
    import signal
    import warnings

    # Ctrl-C is the parent's to handle (it ends the workers); no traceback from each of them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.simplefilter("ignore")  # a decoder's warnings would print across the terminal from other processes
    if initializer is not None:
        initializer(*initargs)


class _Workers:
    """The worker processes of one pass; killed from any thread, replaced after one of them died."""

    def __init__(self, n: int, method: str, initializer, initargs: tuple):
        self._make = lambda: ProcessPoolExecutor(n, mp_context=multiprocessing.get_context(method),
                                                 initializer=_start_worker, initargs=(initializer, initargs))
        self._lock = threading.Lock()
        self._killed = False
        self._executor = self._make()

    def submit(self, work, batch: list) -> Future:
        return self._executor.submit(_work_chunk, work, batch)

    def restart(self, signal: stopping.StopSignal) -> bool:
        """Fresh workers in place of a broken pool; False when they cannot start at all."""
        with self._lock:
            if self._killed:
                raise stopping.Stopped("the probe was stopped")
            _end(self._executor, kill=True)
            self._executor = self._make()
            ready = self._executor.submit(_ready)
        while True:
            try:
                return ready.result(timeout=0.5)
            except BrokenProcessPool:
                signal.check()
                return False
            except TimeoutError:
                signal.check()

    def kill(self) -> None:
        with self._lock:
            self._killed = True
            _end(self._executor, kill=True)

    def close(self, finished: bool) -> None:
        with self._lock:
            _end(self._executor, kill=not finished)


def _end(executor: ProcessPoolExecutor, kill: bool) -> None:
    """Shut the pool down and reap its processes; with ``kill``, without waiting for the work in hand."""
    if kill:
        stop_now = getattr(executor, "kill_workers", None)  # Python >= 3.14
        if stop_now is not None:
            stop_now()
        else:
            for process in list((getattr(executor, "_processes", None) or {}).values()):
                process.kill()
    executor.shutdown(wait=True, cancel_futures=True)
