"""Worker processes for CPU training: calls run side by side in ``python -c`` processes, one thread each.

On a CPU a small network's step leaves torch's intra-op threads waiting on each other: on a 2-core VM the
quick profile's first round took 246 s in one process with two threads, and 180 s and 210 s in two processes
with one thread each, with a fifth less CPU time in all (``scripts/bench_cpu_workers.py`` measures it). So on
a CPU ``hpnb.train_runs`` hands its ensembles to ``cpu_workers()`` processes with ``cores // workers`` threads
each. (A GPU step is launch-bound on one stream instead; CUDA runs train in the calling process.)

This module knows nothing of training: ``run_calls`` sends each (function, args) pickle to an idle worker and
reports the result, or that the worker died. Workers are plain ``python -c`` processes that talk pickles over
their standard input and output, so a user's script is never re-imported in them (as multiprocessing's spawn
would) and a notebook kernel can start them. A called function gets ``tick=``, a callable that reports
progress to the parent.

``HPNB_CPU_WORKERS=1`` trains in the calling process (the tests set it); ``HPNB_CPU_WORKERS=N`` asks for N.
"""
from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .registry import ConfigError

ENV = "HPNB_CPU_WORKERS"
MAX_AUTO_WORKERS = 4  # measured up to 2; more processes also mean more copies of torch in memory


def usable_cores() -> int:
    """Cores this process may run on (a SLURM allocation or taskset narrows them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cpu_workers() -> int:
    """How many worker processes CPU training uses: ``$HPNB_CPU_WORKERS``, else one per core up to
    ``MAX_AUTO_WORKERS``. Raises ConfigError for a value that is not a whole number of at least 1."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return min(usable_cores(), MAX_AUTO_WORKERS)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"${ENV}: {raw!r} is not allowed; give a whole number of worker processes, at least 1 "
                          f"(1 trains in this process)")
    return value


def _serve(threads: int) -> None:
    """A worker's life: read (function, args) pickles from stdin until it closes; for each, send "tick"s while
    the function reports progress, then ("done", result) or ("raised", traceback)."""
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops the workers
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, never into the pickles
    torch.set_num_threads(threads)
    os.environ["HPNB_PROGRESS"] = "0"  # the parent shows progress for all workers

    def send(message) -> None:
        pickle.dump(message, channel)
        channel.flush()

    while True:
        try:
            function, args = pickle.load(sys.stdin.buffer)
        except EOFError:
            return
        try:
            send(("done", function(*args, tick=lambda: send("tick"))))
        except Exception:
            send(("raised", traceback.format_exc(limit=5)))


class _Worker:
    """One worker process, and the call it holds (``args`` is None while it is idle)."""

    def __init__(self, threads: int, events: queue.Queue):
        package_parent = str(Path(__file__).resolve().parents[1])  # found even when hpnb is not installed
        env = dict(os.environ, HPNB_PROGRESS="0",
                   PYTHONPATH=os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen([sys.executable, "-c", f"from hpnb.workers import _serve; _serve({threads})"],
                                        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.index: Optional[int] = None
        self.args: Optional[tuple] = None
        threading.Thread(target=self._listen, args=(events,), daemon=True).start()

    def _listen(self, events: queue.Queue) -> None:
        while True:
            try:
                message = pickle.load(self.process.stdout)
            except Exception:  # EOF (the process has ended) or a torn message (it can no longer be trusted)
                if self.process.poll() is None and not self.process.stdin.closed:
                    self.process.kill()
                events.put((self, "ended", self.process.wait()))
                return
            events.put((self, message, None))

    def give(self, index: int, function: Callable, args: tuple) -> bool:
        self.index, self.args = index, args
        try:
            pickle.dump((function, args), self.process.stdin)
            self.process.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            self.index = self.args = None
            return False

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.process.stdin.close()  # the worker returns at the end of its input
            except OSError:
                pass
        self.process.wait()


def run_calls(calls: Sequence[tuple[Callable, tuple]], workers: int, on_result: Callable[[int, Any], None],
              on_lost: Callable[[int, str], None], on_tick: Callable[[], None] = lambda: None) -> None:
    """Run ``function(*args, tick=...)`` for every call in ``workers`` processes, in order, each with
    ``cores // workers`` threads; ``on_result(i, result)`` as call i returns, ``on_lost(i, why)`` if it raises
    or its worker dies (a new worker then takes the next call), ``on_tick()`` for each tick. The functions
    must be importable by name. An exception here or in a callback (an interrupt too) kills the workers."""
    todo = list(enumerate(calls))
    workers = max(1, min(workers, len(todo)))
    threads = max(1, usable_cores() // workers)
    events: queue.Queue = queue.Queue()
    pool: list[_Worker] = []

    def hand_out(worker: _Worker) -> None:
        while todo:
            index, (function, args) = todo.pop(0)
            if worker.give(index, function, args):
                return
            on_lost(index, "a worker process could not take it")

    try:
        for _ in range(workers):
            pool.append(_Worker(threads, events))
            hand_out(pool[-1])
        while any(w.args is not None for w in pool):
            worker, message, code = events.get()
            if message == "tick":
                on_tick()
                continue
            index = worker.index
            if message == "ended":
                if index is None:
                    continue
                worker.index = worker.args = None
                on_lost(index, f"the worker process running it ended (exit code {code}) before it finished")
                if todo:  # the next call gets a fresh process
                    pool.append(_Worker(threads, events))
                    hand_out(pool[-1])
                continue
            kind, payload = message
            worker.index = worker.args = None
            hand_out(worker)  # keep the worker busy while the parent handles the result
            if kind == "done":
                on_result(index, payload)
            else:
                on_lost(index, f"it raised in its worker process: {payload.strip().splitlines()[-1]}")
    except BaseException:
        for worker in pool:  # do not wait for the calls still running
            worker.stop(kill=True)
        raise
    finally:
        for worker in pool:
            worker.stop()


__all__ = ["cpu_workers", "usable_cores", "run_calls", "ENV", "MAX_AUTO_WORKERS"]
