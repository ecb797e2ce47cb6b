"""The run store: one folder per config hash, atomic writes, checksums, per-run locks, resume.

Layout of ``<root>/<hash>/``: ``config.json``, ``checkpoint.pt`` (the latest epoch's full state),
``history.csv``, ``summary.json``, optional ``grad_norms.csv`` / ``activations.csv`` and ``manifest.json``
(SHA-256 of every other file, written last). A run is finished when its manifest lists a summary and every
listed file matches its checksum; anything else is resumed from a verified checkpoint or redone. Damaged
folders are moved to ``<root>/.quarantine/``, never deleted.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import pickle
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import pandas as pd
import torch

from .config import RunConfig
from .train import EpochState, Run

MANIFEST = "manifest.json"
CHECKPOINT_MAGIC = b"HPNBCKPT"  # checkpoint file = magic + SHA-256 of the payload + payload


def default_store_root() -> Path:
    from .paths import store_dir

    return store_dir()


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file, fsync, then rename: a reader sees the old file or the new one, whole."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class CorruptRun(Exception):
    pass


class RunStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_store_root()

    def folder(self, cfg: RunConfig) -> Path:
        return self.root / cfg.hash

    # ------------------------------------------------------------------ locking
    @contextlib.contextmanager
    def lock(self, cfg: RunConfig, wait: bool = True):
        """Hold the run's lock (yields True), or yield False at once if another process holds it and not wait."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / f".{cfg.hash}.lock", "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            handle.close()  # closing releases the lock

    # ------------------------------------------------------------------ reading
    def _manifest(self, folder: Path) -> dict:
        try:
            return json.loads((folder / MANIFEST).read_text())
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CorruptRun(f"{folder / MANIFEST}: {err}") from None

    def _verified(self, folder: Path, name: str, manifest: dict) -> bytes:
        data = (folder / name).read_bytes() if (folder / name).exists() else None
        if data is None or name not in manifest or sha256(data) != manifest[name]:
            raise CorruptRun(f"{folder / name} is missing or does not match its checksum")
        return data

    def load(self, cfg: RunConfig, quarantine: bool = True) -> Optional[Run]:
        """The finished run for ``cfg``, or None. A damaged one is quarantined (call with the run's lock held)."""
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
            read = lambda name: pd.read_csv(io.BytesIO(files[name])) if name in files else None  # noqa: E731
            return Run(cfg, read("history.csv"), json.loads(files["summary.json"]),
                       grad_norms=read("grad_norms.csv"), activations=read("activations.csv"),
                       path=folder, cached=True)
        except (CorruptRun, json.JSONDecodeError, UnicodeDecodeError, pd.errors.ParserError, ValueError) as err:
            if quarantine:
                self.quarantine(folder, str(err))
            return None

    def load_hash(self, run_hash: str) -> Optional[Run]:
        """The finished run stored under ``run_hash`` (its config is read from the folder)."""
        try:
            cfg = RunConfig.from_dict(json.loads((self.root / run_hash / "config.json").read_text()))
        except (OSError, json.JSONDecodeError):
            return None
        return self.load(cfg, quarantine=False)

    def load_checkpoint(self, cfg: RunConfig, quarantine: bool = True) -> Optional[EpochState]:
        """The latest verified checkpoint of an unfinished run, or None (damaged: quarantined, lock held)."""
        path = self.folder(cfg) / "checkpoint.pt"
        if not path.exists():
            return None
        try:
            # The checkpoint carries its own checksum: it is replaced atomically every epoch, and a kill
            # between it and the manifest must not make a good checkpoint look damaged.
            blob = path.read_bytes()
            head, digest, payload = blob[:8], blob[8:40], blob[40:]
            if head != CHECKPOINT_MAGIC or hashlib.sha256(payload).digest() != digest:
                raise CorruptRun(f"{path} is truncated or does not match its checksum")
            state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
            return EpochState(**state)
        except (CorruptRun, RuntimeError, EOFError, TypeError, pickle.UnpicklingError) as err:
            if quarantine:
                self.quarantine(path.parent, str(err))
            return None

    def quarantine(self, folder: Path, reason: str) -> Path:
        """Move a damaged run aside (kept for inspection) so it is redone."""
        target = self.root / ".quarantine" / f"{folder.name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), str(target))
        (target / "QUARANTINED.txt").write_text(reason + "\n")
        return target

    # ------------------------------------------------------------------ writing
    def _write(self, folder: Path, files: dict[str, bytes], keep: tuple[str, ...] = ()) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        old = self._manifest(folder) if (folder / MANIFEST).exists() else {}
        manifest = {name: old[name] for name in keep if name in old}
        for name, data in files.items():
            atomic_write(folder / name, data)
            manifest[name] = sha256(data)
        atomic_write(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())

    def save_epoch(self, cfg: RunConfig, state: EpochState) -> None:
        buffer = io.BytesIO()
        torch.save(asdict(state), buffer)
        payload = buffer.getvalue()
        folder = self.folder(cfg)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "checkpoint.pt", CHECKPOINT_MAGIC + hashlib.sha256(payload).digest() + payload)
        if not (folder / "config.json").exists():
            self._write(folder, {"config.json": json.dumps(cfg.to_dict(), indent=1, sort_keys=True).encode()})

    def save_run(self, run: Run) -> Run:
        files = {"config.json": json.dumps(run.config.to_dict(), indent=1, sort_keys=True).encode(),
                 "history.csv": run.history.to_csv(index=False).encode()}
        for name, frame in (("grad_norms.csv", run.grad_norms), ("activations.csv", run.activations)):
            if frame is not None:
                files[name] = frame.to_csv(index=False).encode()
        files["summary.json"] = json.dumps(run.summary, indent=1, sort_keys=True).encode()
        folder = self.folder(run.config)
        self._write(folder, files)
        run.path = folder
        return run

    # ------------------------------------------------------------------ listing
    def list_runs(self) -> pd.DataFrame:
        """One row per run folder: hash, status, epochs, model, dataset, final metrics."""
        rows = []
        for folder in sorted(p for p in self.root.glob("*") if p.is_dir() and not p.name.startswith(".")):
            try:
                manifest = self._manifest(folder)
                config = json.loads((folder / "config.json").read_text())
                summary = json.loads((folder / "summary.json").read_text()) if "summary.json" in manifest else {}
            except (OSError, CorruptRun, json.JSONDecodeError):
                rows.append({"hash": folder.name, "status": "damaged"})
                continue
            epochs_done = summary.get("epochs_run")
            if not summary:
                state = "in progress" if (folder / "checkpoint.pt").exists() else "empty"
            else:
                state = summary["status"]
            rows.append({"hash": folder.name, "status": state, "dataset": config["data"]["name"],
                         "model": config["model"]["name"], "epochs": f"{epochs_done or '?'}/{config['epochs']}",
                         "seed": config["seed"], "val_acc": summary.get("final_val_acc"),
                         "test_acc": summary.get("final_test_acc"), "seconds": summary.get("seconds")})
        return pd.DataFrame(rows)
