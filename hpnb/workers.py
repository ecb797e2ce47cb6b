"""Worker processes for CPU training: calls run side by side in ``python -c`` processes, one thread each.

On a CPU a small network's step leaves torch's intra-op threads waiting on each other: on a 2-core VM the
quick profile's first round took 231 s in one process with two threads and 183 s in two processes with one
thread each, with 352 s of CPU time against 452 s (medians of ``scripts/bench_cpu_workers.py --rounds 2``). So
on a CPU ``hpnb.train_runs`` hands its ensembles (when there is a store and more than one ensemble) to
``cpu_workers()`` processes with ``cores // workers`` threads each. A GPU step is launch-bound on one stream
instead; CUDA runs train in the calling process.

This module knows nothing of training: ``run_calls`` sends each (function, args) pickle to an idle worker and
reports the result, or that the worker died. Workers are plain ``python -c`` processes that talk pickles over
their standard input and output, so a user's script is never re-imported in them (as multiprocessing's spawn
would) and a notebook kernel can start them. A called function gets ``tick=``, a callable that reports
progress to the parent. Workers import hpnb afresh: components registered at run time in the caller (a
notebook's ``Registry.register``) do not exist there, so such runs need ``HPNB_CPU_WORKERS=1``.

``HPNB_CPU_WORKERS=1`` trains in the calling process (the tests set it); ``HPNB_CPU_WORKERS=N`` asks for N.
"""
from __future__ import annotations

import collections
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
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


# What a worker runs first, before importing anything heavy: ignore Ctrl-C (it reaches the whole process
# group; the parent stops the workers), keep the real stdout for the pickles and send everything else printed
# to stderr, and import hpnb from where the parent did (never from the working directory).
_PRELUDE = """import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
channel = os.dup(1)
os.dup2(2, 1)
sys.path[:] = sys.path[1:] if sys.path[:1] == [""] else sys.path  # "" is -c's working directory
sys.path.append({parent!r})
from hpnb.workers import _serve
_serve({threads}, channel, {source!r})
"""
STDERR_LINES = 20  # of a worker's last output, quoted when it dies


def _serve(threads: int, channel_fd: int, source: str) -> None:
    """A worker's life: read (function, args) pickles from stdin until it closes; for each, send "tick"s while
    the function reports progress, then ("done", result) or ("raised", traceback). It exits as soon as the
    parent is gone, so an orphan never trains on without the parent's locks."""
    import torch

    if os.path.realpath(__file__) != source:
        sys.exit(f"hpnb worker: imported {os.path.realpath(__file__)}, but the parent runs {source}")
    channel = os.fdopen(channel_fd, "wb")
    torch.set_num_threads(threads)
    os.environ["HPNB_PROGRESS"] = "0"  # the parent shows progress for all workers
    parent = os.getppid()

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch_parent, daemon=True).start()

    def write(data: bytes) -> None:  # whole pickles only: one that fails to build never tears the stream
        try:
            channel.write(data)
            channel.flush()
        except OSError:  # the parent closed its end: it is gone
            os._exit(1)

    tick = pickle.dumps("tick")
    while True:
        try:
            function, args = pickle.load(sys.stdin.buffer)
        except EOFError:
            return
        try:
            data = pickle.dumps(("done", function(*args, tick=lambda: write(tick))))
        except Exception:
            data = pickle.dumps(("raised", traceback.format_exc(limit=5)))
        write(data)


class _Worker:
    """One worker process, and the call it holds (``index``/``args`` are None while it is idle)."""

    def __init__(self, threads: int, events: queue.Queue):
        source = os.path.realpath(__file__)
        prelude = _PRELUDE.format(parent=str(Path(source).parents[1]), threads=threads, source=source)
        self.process = subprocess.Popen([sys.executable, "-c", prelude], env=dict(os.environ, HPNB_PROGRESS="0"),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.index: Optional[int] = None
        self.args: Optional[tuple] = None
        self.stderr: collections.deque = collections.deque(maxlen=STDERR_LINES)
        threading.Thread(target=self._listen, args=(events,), daemon=True).start()
        threading.Thread(target=self._relay_stderr, daemon=True).start()

    def _listen(self, events: queue.Queue) -> None:
        while True:
            try:
                message = pickle.load(self.process.stdout)
            except Exception as err:  # EOF (the process has ended) or a torn message (it can no longer be trusted)
                torn = not isinstance(err, EOFError)
                if torn:
                    self.process.kill()
                code = self.process.wait()
                events.put((self, "ended", "sent output that is not a message" if torn else f"exit code {code}"))
                return
            events.put((self, message, None))

    def _relay_stderr(self) -> None:
        """Pass the worker's stderr on (warnings, stray prints) and keep its last lines for a post-mortem."""
        for line in iter(self.process.stderr.readline, b""):
            text = line.decode(errors="replace")
            self.stderr.append(text.rstrip())
            sys.stderr.write(text)

    def why_ended(self, how: str) -> str:
        last = [line for line in self.stderr if line.strip()][-3:]
        return f"the worker process running it ended ({how}) before it finished" + (
            "; its last output: " + " | ".join(last) if last else "")

    def give(self, index: int, function: Callable, args: tuple) -> bool:
        self.index, self.args = index, args
        try:
            self.process.stdin.write(pickle.dumps((function, args)))
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
              on_lost: Callable[[int, str], None], on_tick: Callable[[int], None] = lambda index: None) -> None:
    """Run ``function(*args, tick=...)`` for every call in ``workers`` processes, in order, each with
    ``cores // workers`` threads; ``on_result(i, result)`` as call i returns, ``on_lost(i, why)`` if it raises
    or its worker dies (a new worker then takes the next call), ``on_tick(i)`` for each tick of call i. The
    functions must be importable by name. An exception here or in a callback (an interrupt too) kills the
    workers at once."""
    todo = list(enumerate(calls))
    workers = max(1, min(workers, len(todo)))
    threads = max(1, usable_cores() // workers)
    events: queue.Queue = queue.Queue()
    pool: list[_Worker] = []
    starts_left = len(todo) + workers  # a worker that dies while idle is replaced, but not forever

    def start() -> Optional[_Worker]:
        nonlocal starts_left
        if starts_left == 0:
            return None
        starts_left -= 1
        pool.append(_Worker(threads, events))
        return pool[-1]

    def hand_out(worker: Optional[_Worker], why: str = "") -> None:
        if not todo:
            return
        if worker is None:  # workers keep dying: fail what is left rather than loop
            for index, _ in todo:
                on_lost(index, f"worker processes keep ending ({why})")
            todo.clear()
            return
        index, (function, args) = todo.pop(0)
        if not worker.give(index, function, args):
            todo.insert(0, (index, (function, args)))  # it is gone; its "ended" event starts a new one

    try:
        for _ in range(workers):
            hand_out(start())
        while todo or any(w.index is not None for w in pool):
            worker, message, how = events.get()
            if message == "tick":
                if worker.index is not None:
                    on_tick(worker.index)
                continue
            index = worker.index
            worker.index = worker.args = None
            if message == "ended":
                if index is not None:
                    on_lost(index, worker.why_ended(how))
                hand_out(start(), how)  # the next call gets a fresh process
                continue
            kind, payload = message
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
            worker.stop(kill=worker.index is not None)


__all__ = ["cpu_workers", "usable_cores", "run_calls", "ENV", "MAX_AUTO_WORKERS"]
