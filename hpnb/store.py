"""The run store: one folder per config hash, atomic writes, checksums, per-run locks, resume.

Layout of ``<root>/<hash>/``: ``config.json``, ``checkpoint.pt`` (the latest epoch's full state, with its own
checksum and the hash of its config), ``history.csv``, ``summary.json``, optional ``grad_norms.csv`` /
``activations.csv`` and ``manifest.json`` (SHA-256 of every other file, written last). A run is finished when
its manifest lists a summary and every listed file matches its checksum; anything else is resumed from a
verified checkpoint or redone.

Faults: a damaged run folder is moved to ``<root>/.quarantine/`` (never deleted) and the run resumes from its
checkpoint if that still verifies, else it is redone. A damaged checkpoint alone is moved there too; a finished
run does not need its checkpoint, so its results stay valid. Partial writes of killed processes (``.*.tmp``)
are removed by the next process that holds the run's lock; lock files are removed by their holder.
A store that cannot be written (read-only, full) raises StoreError naming the path; what it held is untouched,
and finished runs are still read from it.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import itertools
import json
import math
import os
import pickle
import re
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch

from .config import RunConfig
from .loop import EpochState, Run

MANIFEST = "manifest.json"
CHECKPOINT_MAGIC = b"HPNBCKPT"  # checkpoint file = magic + SHA-256 of the payload + payload
RESULT_FILES = ("config.json", "history.csv", "summary.json", "grad_norms.csv", "activations.csv")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_QUARANTINED = itertools.count()


def default_store_root() -> Path:
    from .paths import store_dir

    return store_dir()


class StoreError(OSError):
    """The run store cannot be written (read-only, disk full, permissions); names the store and the path."""

    def __init__(self, root: Path, err: OSError):
        where = f" ({err.filename})" if err.filename else ""
        super().__init__(err.errno, f"cannot write to the run store {root}: {err.strerror or err}{where}")
        self.root, self.path = root, err.filename

    def __str__(self) -> str:
        return self.strerror


@contextlib.contextmanager
def _writing(root: Path):
    """Turn an OSError of a write into a StoreError naming the store."""
    try:
        yield
    except StoreError:
        raise
    except OSError as err:
        raise StoreError(root, err) from err


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file, fsync, then rename: a reader sees the old file or the new one, whole.
    A failed write (disk full) removes its temporary file and leaves the old file as it was."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError) and err.filename is None:
            err.filename = str(path)  # a failed write() or fsync() names no file: name the one being replaced
        raise


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class CorruptRun(Exception):
    pass


def checkpoint_payload(path: Path, blob: bytes) -> bytes:
    """The payload of a checkpoint file's bytes; CorruptRun if it is truncated or does not match its checksum."""
    head, digest, payload = blob[:8], blob[8:40], blob[40:]
    if head != CHECKPOINT_MAGIC or hashlib.sha256(payload).digest() != digest:
        raise CorruptRun(f"{path} is truncated or does not match its checksum")
    return payload


# --------------------------------------------------------------------------- exact tables
def table_bytes(frame: pd.DataFrame) -> bytes:
    """A DataFrame as CSV; floats are written in their shortest exact form (``repr``)."""
    return frame.to_csv(index=False).encode()


def _column(values: list[str]):
    """One CSV column back with its dtype: int64, float64 (parsed by Python: exact), bool or text."""
    present = [v for v in values if v != ""]
    if present and len(present) == len(values) and all(re.fullmatch(r"-?\d{1,18}", v) for v in present):
        return np.array([int(v) for v in values], dtype=np.int64)
    if present and all(v in ("True", "False") for v in present) and len(present) == len(values):
        return np.array([v == "True" for v in values], dtype=bool)
    try:
        return np.array([float(v) if v != "" else math.nan for v in values], dtype=np.float64)
    except ValueError:
        return np.array([v if v != "" else math.nan for v in values], dtype=object)


def read_table(data: bytes) -> pd.DataFrame:
    """The DataFrame :func:`table_bytes` wrote, bit for bit: pandas' own CSV float parser does not round-trip
    every double in every version (pandas 2's default parser is off by an ulp for some), so values are parsed by
    Python's ``float``. Raises ValueError on a table that is not rectangular."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    if not rows:
        raise ValueError("empty table")
    header, body = rows[0], rows[1:]
    if any(len(row) != len(header) for row in body):
        raise ValueError("rows of different lengths")
    return pd.DataFrame({name: _column([row[i] for row in body]) for i, name in enumerate(header)},
                        columns=header)


class RunStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_store_root()

    def folder(self, cfg: RunConfig) -> Path:
        return self.root / cfg.hash

    # ------------------------------------------------------------------ locking
    def lock_path(self, cfg: RunConfig) -> Path:
        return self.root / f".{cfg.hash}.lock"

    @contextlib.contextmanager
    def lock(self, cfg: RunConfig, wait: bool = True):
        """Hold the run's lock (yields True), or yield False at once if another process holds it and not wait.

        The lock is ``flock`` on ``<root>/.<hash>.lock``, released by the kernel when its holder dies. The holder
        deletes the file on release; a process that was waiting on the deleted file then finds the path gone or
        pointing at a new file, and locks again, so two processes never both hold the lock of one run.
        """
        path = self.lock_path(cfg)
        with _writing(self.root):
            self.root.mkdir(parents=True, exist_ok=True)
        while True:
            with _writing(self.root):
                handle = open(path, "a+")
            try:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    handle.close()
                    yield False
                    return
                try:
                    current = os.stat(path)
                except FileNotFoundError:
                    current = None
                if current is None or current.st_ino != os.fstat(handle.fileno()).st_ino:
                    handle.close()  # the previous holder removed this file: lock the one now at the path
                    continue
                try:
                    yield True
                finally:
                    with contextlib.suppress(OSError):
                        path.unlink()  # still holding the lock, so no one else is between open and flock
                return
            finally:
                handle.close()  # closing releases the lock

    def clean_partial_writes(self, cfg: RunConfig) -> list[Path]:
        """Remove the ``.*.tmp`` files that killed processes left in the run's folder (call with the lock held:
        then no live process is writing them). They are incomplete copies of files that exist whole."""
        folder = self.folder(cfg)
        removed = []
        for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
        return removed

    # ------------------------------------------------------------------ reading
    def _manifest(self, folder: Path) -> dict:
        """The folder's manifest (name → SHA-256), {} if there is none; CorruptRun if it is not a manifest."""
        try:
            manifest = json.loads((folder / MANIFEST).read_bytes().decode("utf-8"))
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CorruptRun(f"{folder / MANIFEST}: {err}") from None
        if not (isinstance(manifest, dict) and all(name in RESULT_FILES and isinstance(digest, str)
                                                   and _DIGEST.fullmatch(digest) for name, digest in manifest.items())):
            raise CorruptRun(f"{folder / MANIFEST}: not a manifest of this store (names: {RESULT_FILES})")
        return manifest

    def _verified(self, folder: Path, name: str, manifest: dict) -> bytes:
        data = (folder / name).read_bytes() if (folder / name).exists() else None
        if data is None or name not in manifest or sha256(data) != manifest[name]:
            raise CorruptRun(f"{folder / name} is missing or does not match its checksum")
        return data

    def load(self, cfg: RunConfig, quarantine: bool = True) -> Optional[Run]:
        """The finished run for ``cfg``, or None. A damaged one is quarantined (call with the run's lock held);
        with ``quarantine=False`` this only reads, so it needs no lock (files are replaced atomically)."""
        folder = self.folder(cfg)
        if not folder.exists():
            return None
        try:
            manifest = self._manifest(folder)
            if "summary.json" not in manifest:
                return None
            files = {name: self._verified(folder, name, manifest) for name in manifest}
            stored = json.loads(files["config.json"])
            if RunConfig.from_dict(stored).hash != cfg.hash:
                raise CorruptRun(f"{folder / 'config.json'} does not hash to {cfg.hash}")
            read = lambda name: read_table(files[name]) if name in files else None  # noqa: E731
            return Run(cfg, read("history.csv"), json.loads(files["summary.json"]),
                       grad_norms=read("grad_norms.csv"), activations=read("activations.csv"),
                       path=folder, cached=True)
        except (CorruptRun, KeyError, json.JSONDecodeError, UnicodeDecodeError, ValueError) as err:
            if quarantine:
                self.quarantine(folder, str(err))
            return None
        except OSError:  # moved or unreadable while we read: not a finished run we can use
            return None

    def load_hash(self, run_hash: str) -> Optional[Run]:
        """The finished run stored under ``run_hash`` (its config is read from the folder)."""
        try:
            cfg = RunConfig.from_dict(json.loads((self.root / run_hash / "config.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return self.load(cfg, quarantine=False)

    def load_checkpoint(self, cfg: RunConfig, quarantine: bool = True) -> Optional[EpochState]:
        """The latest verified checkpoint of ``cfg``, or None. A damaged one (or one of another config) is moved
        to the quarantine on its own (lock held); the run's finished results, if any, stay valid."""
        path = self.folder(cfg) / "checkpoint.pt"
        if not path.exists():
            return None
        try:
            # The checkpoint carries its own checksum: it is replaced atomically every epoch, and a kill
            # between it and the manifest must not make a good checkpoint look damaged.
            payload = checkpoint_payload(path, path.read_bytes())
            state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
            owner = state.pop("config_hash", cfg.hash)  # checkpoints written before it was recorded: trusted
            if owner != cfg.hash:
                raise CorruptRun(f"{path} belongs to run {owner}, not {cfg.hash}")
            return EpochState(**state)
        except (CorruptRun, RuntimeError, EOFError, TypeError, AttributeError, pickle.UnpicklingError) as err:
            if quarantine:
                self.quarantine(path, str(err))
            return None
        except FileNotFoundError:
            return None

    def quarantine(self, path: Path, reason: str) -> Path:
        """Move a damaged run folder, or a damaged checkpoint file, aside (kept for inspection) so the run is
        resumed or redone. A moved folder's checkpoint is copied back: if it verifies, the run resumes from it
        instead of starting over. Returns where it was moved."""
        run_hash = path.name if path.is_dir() else path.parent.name
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{next(_QUARANTINED)}"
        target = self.root / ".quarantine" / f"{run_hash}-{stamp}"
        with _writing(self.root):
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.move(str(path), str(target))
                if (target / "checkpoint.pt").is_file():
                    path.mkdir()
                    shutil.copy2(target / "checkpoint.pt", path / "checkpoint.pt")
            else:
                target.mkdir()
                shutil.move(str(path), str(target / path.name))
            (target / "QUARANTINED.txt").write_text(reason + "\n")
        return target

    # ------------------------------------------------------------------ writing
    def _write(self, folder: Path, files: dict[str, bytes], keep: tuple[str, ...] = ()) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            old = self._manifest(folder) if (folder / MANIFEST).exists() else {}
        except CorruptRun:
            old = {}  # rewritten below from the files themselves
        manifest = {name: old[name] for name in keep if name in old}
        for name, data in files.items():
            atomic_write(folder / name, data)
            manifest[name] = sha256(data)
        atomic_write(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())

    def save_epoch(self, cfg: RunConfig, state: EpochState) -> None:
        """Replace the run's checkpoint with ``state`` (StoreError if the store cannot be written)."""
        buffer = io.BytesIO()
        torch.save({**asdict(state), "config_hash": cfg.hash}, buffer)
        payload = buffer.getvalue()
        folder = self.folder(cfg)
        created = not folder.exists()
        try:
            with _writing(self.root):
                folder.mkdir(parents=True, exist_ok=True)
                atomic_write(folder / "checkpoint.pt", CHECKPOINT_MAGIC + hashlib.sha256(payload).digest() + payload)
                if not (folder / "config.json").exists():
                    self._write(folder, {"config.json": json.dumps(cfg.to_dict(), indent=1, sort_keys=True).encode()})
        except StoreError:
            if created:  # leave no empty folder behind a run that could not write its first epoch
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise

    def save_run(self, run: Run) -> Run:
        """Write a finished run's results (StoreError if the store cannot be written: then the folder still
        holds its last checkpoint, and the next attempt finishes from it)."""
        files = {"config.json": json.dumps(run.config.to_dict(), indent=1, sort_keys=True).encode(),
                 "history.csv": table_bytes(run.history)}
        for name, frame in (("grad_norms.csv", run.grad_norms), ("activations.csv", run.activations)):
            if frame is not None:
                files[name] = table_bytes(frame)
        files["summary.json"] = json.dumps(run.summary, indent=1, sort_keys=True).encode()
        folder = self.folder(run.config)
        with _writing(self.root):
            self._write(folder, files)
        run.path = folder
        return run

    # ------------------------------------------------------------------ listing
    def inspect(self, folder: Path, verify: bool = False) -> tuple[str, dict, dict]:
        """(status, config, summary) of one run folder, only reading. The status is the summary's (finished or
        diverged), "in progress", "empty" or "damaged: <what>"; with ``verify`` every checksum is checked, the
        checkpoint's too (else only what listing needs is read)."""
        try:
            manifest = self._manifest(folder)
            config = json.loads((folder / "config.json").read_bytes()) if (folder / "config.json").exists() else {}
            summary = json.loads((folder / "summary.json").read_bytes()) if "summary.json" in manifest else {}
            if not isinstance(config, dict) or not isinstance(summary, dict):
                raise CorruptRun("config.json or summary.json is not a JSON object")
            if verify:
                for name in manifest:
                    self._verified(folder, name, manifest)
                if (folder / "checkpoint.pt").exists():
                    checkpoint_payload(folder / "checkpoint.pt", (folder / "checkpoint.pt").read_bytes())
        except (OSError, CorruptRun, ValueError) as err:
            return f"damaged: {str(err).replace(str(folder) + os.sep, '')}", {}, {}
        if summary:
            return str(summary.get("status", "damaged: summary.json has no status")), config, summary
        if (folder / "checkpoint.pt").exists():
            return "in progress", config, summary
        return "empty", config, summary

    def list_runs(self, verify: bool = False) -> pd.DataFrame:
        """One row per run folder: hash, status, epochs, model, dataset, final metrics (``verify``: every
        checksum checked, see :meth:`inspect`)."""
        rows = []
        folders = sorted(p for p in self.root.glob("*") if p.is_dir() and not p.name.startswith("."))
        for folder in folders:
            status, config, summary = self.inspect(folder, verify)
            field_of = lambda section, key: (config.get(section) or {}).get(key) if isinstance(  # noqa: E731
                config.get(section), dict) else None
            epochs_done = summary.get("epochs_run")
            rows.append({"hash": folder.name, "status": status, "dataset": field_of("data", "name"),
                         "model": field_of("model", "name"),
                         "epochs": f"{epochs_done or '?'}/{config.get('epochs', '?')}",
                         "seed": config.get("seed"), "val_acc": summary.get("final_val_acc"),
                         "test_acc": summary.get("final_test_acc"), "seconds": summary.get("seconds")})
        return pd.DataFrame(rows)
