"""Fault injection: bad inputs and store faults, each counted (printed at the end of the run by conftest).

- bad run configs through ``hpnb train``: every one exits 2 with the exact one-line message below, naming the
  file (and the key), with no traceback, and writes nothing: no store folder, no run folder, no lock file;
- store faults: every file of a finished run truncated, flipped, deleted or replaced by garbage, and folder-level
  faults: each is detected, quarantined (never deleted) and redone to a result equal to the original;
- a read-only store and a full disk: a clear error naming the path (exit 1), and the stored runs intact;
- SIGKILL of a training process at random moments, repeated, then a finish equal to an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml

from hpnb import RunConfig, RunStore, cli, train
from hpnb.store import CHECKPOINT_MAGIC

from conftest import REPO, fault_case, record_fault, tiny_dict

TIMING = ["seconds", "samples_per_sec"]
SUMMARY_TIMING = ("seconds", "final_seconds", "final_samples_per_sec")


# =========================================================================== bad run configs
@dataclass
class Bad:
    """One bad input: the file's content (bytes or text; ``{tmp}`` is the test's folder), and the exact message
    the user sees after ``error: <file>: ``. ``kind`` "missing" / "folder" make no file / a folder."""

    label: str
    content: bytes | str | None
    message: str
    kind: str = "file"
    setup: Callable[[Path], None] | None = None  # prepares the test's folder (e.g. data files)


def _altered_fashion(folder: Path) -> None:
    """Fashion-MNIST files of the right format whose content is not the published data."""
    import gzip
    import struct

    raw = folder / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 60), ("t10k", 10)):
        (raw / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(struct.pack(">IIII", 0x0803, n, 28, 28)
                                                                           + bytes(n * 784)))
        (raw / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 0x0801, n)
                                                                           + bytes(i % 10 for i in range(n))))


def _lol() -> str:  # "billion laughs": nine aliases of nine aliases ..., small as text, 10^9 values expanded
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


ALLOWED_TOP = ("data, model, init, optimizer, schedule, strategy, epochs, batch_size, drop_last, eval_batch_size, "
               "test_every_epoch, seed, probes, device, amp, channels_last, compile, cuda_graphs")
MAPPING = "expected a mapping of run settings"
NO_CUDA = not torch.cuda.is_available()

# Each entry is what a new user might write. Chapter parameter files get their own corpus with the same checks
# (add a list beside this one and run it through test_bad_chapter_params).
BAD_RUN_CONFIGS = [
    # ---- the file itself
    Bad("empty file", b"", f"empty; {MAPPING}"),
    Bad("only blank lines", b"\n   \n\n", f"empty; {MAPPING}"),
    Bad("only comments", "# epochs: 3\n# seed: 1\n", f"empty (only comments); {MAPPING}"),
    Bad("null document", "null\n", f"holds only null; {MAPPING}"),
    Bad("tilde document", "~\n", f"holds only null; {MAPPING}"),
    Bad("a list", "- epochs: 3\n- seed: 1\n", f"holds a list of 2 item(s), not a mapping; {MAPPING}"),
    Bad("a word", "mnist\n", f"holds the text 'mnist', not a mapping; {MAPPING}"),
    Bad("a number", "42\n", f"holds the number 42, not a mapping; {MAPPING}"),
    Bad("binary garbage", random.Random(0).randbytes(256),
        f"binary data (not UTF-8 text: byte 0xcd at offset 0), not a YAML text file; {MAPPING}"),
    Bad("binary with NUL bytes", b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(32)),
        f"binary data (a NUL byte at offset 7), not a YAML text file; {MAPPING}"),
    Bad("Latin-1 text", "epochs: 3  # café\n".encode("latin-1"),
        "not UTF-8 text (byte 0xe9 at offset 16); save it as UTF-8"),
    Bad("UTF-16 text", "epochs: 3\n".encode("utf-16"), "UTF-16 text; save it as UTF-8"),
    Bad("a control character", "epochs: 3\x07\n", "not valid YAML: character '\\x07' at offset 9 is a control "
        "character, not allowed in YAML"),
    Bad("unclosed bracket", "model: {name: vgg19, width: 0.5\nepochs: 3\n", "not valid YAML at line 2, column 7: "
        "while parsing a flow mapping expected ',' or '}', but got ':'"),
    Bad("tab indentation", "data:\n\tname: mnist\n", "not valid YAML at line 2, column 1: while scanning for the "
        "next token found character '\\t' that cannot start any token (YAML indents with spaces, not tabs)"),
    Bad("bad indentation", "data:\n  name: mnist\n val_size: 0.2\n", "not valid YAML at line 3, column 2: "
        "while parsing a block mapping expected <block end>, but found '<block mapping start>'"),
    Bad("two documents", "epochs: 3\n---\nepochs: 4\n", "not valid YAML at line 2, column 1: expected a single "
        "document in the stream but found another document"),
    Bad("duplicate key", "epochs: 3\nseed: 1\nepochs: 30\n", "line 3: key 'epochs' appears twice (first on line "
        "1); YAML would silently keep only the last"),
    Bad("duplicate nested key", "optimizer:\n  name: sgd\n  lr: 0.1\n  lr: 0.01\n", "line 4: key 'lr' appears "
        "twice (first on line 3); YAML would silently keep only the last"),
    Bad("recursive alias", "model: &m {name: mlp, width: [*m]}\n", "a value that contains itself (a recursive "
        f"YAML alias); {MAPPING}"),
    Bad("alias bomb", _lol(), f"more than 100,000 values once YAML aliases are expanded; {MAPPING}"),
    Bad("nested 5000 deep", "epochs: " + "[" * 5000 + "]" * 5000 + "\n", f"nested too deeply to be a config; "
        f"{MAPPING}"),
    Bad("2 MB file", "# padding\n" * 200_000, f"2,000,000 bytes is too large for a config file (at most "
        f"1,048,576); {MAPPING}"),
    Bad("no such file", None, "no such config file", kind="missing"),
    Bad("a folder", None, "is a folder, not a config file", kind="folder"),
    # ---- numbers that are not finite, or not numbers
    Bad("weight_decay .inf", "optimizer: {name: sgd, lr: 0.1, weight_decay: .inf}\n",
        "optimizer.weight_decay: got inf, expected a finite number"),
    Bad("lr -.inf", "optimizer: {name: adam, lr: -.inf}\n", "optimizer.lr: got -inf, expected a finite number"),
    Bad("lr .nan", "optimizer: {name: sgd, lr: .nan}\n", "optimizer.lr: got nan, expected a finite number"),
    Bad("momentum .NaN", "optimizer: {name: sgd, momentum: .NaN}\n",
        "optimizer.momentum: got nan, expected a finite number"),
    Bad("inf inside a list", "optimizer: {name: adam, betas: [0.9, .inf]}\n",
        "optimizer.betas[1]: got inf, expected a finite number"),
    Bad("nan in data.mean", "data: {name: digits, mean: [.nan], std: [0.3]}\n",
        "data.mean[0]: got nan, expected a finite number"),
    Bad("val_size .inf", "data: {val_size: .inf}\n", "data.val_size: got inf, expected a finite number"),
    Bad("1.0e+400 overflows to inf", "schedule: {name: exponential, gamma: 1.0e+400}\n",
        "schedule.gamma: got inf, expected a finite number"),
    Bad("a 400-digit integer as a float", "init: {name: scaled_normal, scale: " + "9" * 400 + "}\n",
        "init.scale: got an integer of 400 digits, expected a finite number"),
    Bad("an integer beyond 64 bits", "batch_size: 100000000000000000000000000000\n",
        "batch_size: got an integer of 30 digits, expected an integer that fits in 64 bits"),
    Bad("a 5000-digit integer", "epochs: " + "7" * 5000 + "\n",
        "epochs: got '777777777777...' (an integer of 5000 digits), expected an integer"),
    # ---- YAML 1.1 traps
    Bad("1e-3 is text in YAML 1.1", "optimizer: {name: sgd, lr: 1e-3}\n",
        "optimizer.lr: got '1e-3' (a string: YAML 1.1 reads 1e-3 as text; write 1.0e-3), expected a number"),
    Bad("5.0e4 is text in YAML 1.1", "optimizer: {name: sgd, lr: 0.1, weight_decay: 5.0e4}\n",
        "optimizer.weight_decay: got '5.0e4' (a string: YAML 1.1 reads 5.0e4 as text; write 5.0e+4), expected a "
        "number"),
    Bad("1e3 epochs", "epochs: 1e3\n",
        "epochs: got '1e3' (a string: YAML 1.1 reads 1e3 as text; write the integer 1000), expected an integer"),
    Bad("a quoted number", "optimizer: {name: sgd, lr: '0.1'}\n",
        "optimizer.lr: got '0.1' (a string: write 0.1 without quotes), expected a number"),
    Bad("a leading zero is octal", "seed: 010\n", "seed: got '010' (YAML 1.1 reads a number with a leading 0 as "
        "octal (010 is 8); write it without the leading 0), expected an integer"),
    Bad("1:30 is base 60", "epochs: 1:30\n", "epochs: got '1:30' (YAML 1.1 reads 1:30 as a base-60 number; write "
        "the number itself), expected an integer"),
    Bad("a quoted boolean", "data: {augment: 'yes'}\n",
        "data.augment: got 'yes' (a string: write true or false without quotes), expected true/false"),
    Bad("no is false", "init: no\n", "init: expected a name or a mapping with 'name', got False"),
    Bad("off as a name", "model: {name: off}\n", "model.name: got False, expected one of cifar_cnn, ldlt_mlp, mlp, "
        "mnist_cnn, mobilenet, resnet34, vgg19"),
    Bad("an empty value", "optimizer: {name: sgd, lr: }\n", "optimizer.lr: got null, expected a number"),
    # ---- types and ranges
    Bad("epochs 2.5", "epochs: 2.5\n", "epochs: got 2.5, expected an integer"),
    Bad("epochs as a list", "epochs: [3]\n", "epochs: got [3], expected an integer"),
    Bad("epochs 0", "epochs: 0\n", "epochs: got 0, expected an integer >= 1"),
    Bad("epochs a million", "epochs: 1000000\n", "epochs: got 1000000, expected an integer in 1..100,000"),
    Bad("batch_size true", "batch_size: true\n", "batch_size: got True, expected an integer"),
    Bad("seed -1", "seed: -1\n", "seed: got -1, expected an integer >= 0"),
    Bad("split_seed 2**32", "data: {split_seed: 4294967296}\n",
        "data.split_seed: got 4294967296, expected an integer in 0..2**32-1"),
    Bad("device gpu", "device: gpu\n", "device: got 'gpu', expected auto, cpu, cuda or cuda:N"),
    Bad("device cuda:x", "device: cuda:x\n", "device: got 'cuda:x', expected auto, cpu, cuda or cuda:N"),
    Bad("unknown top-level key", "epoch: 3\n", f"unknown key 'epoch'; allowed keys: {ALLOWED_TOP}"),
    Bad("a number as a key", "3: epochs\n", f"unknown key 3; allowed keys: {ALLOWED_TOP}"),
    Bad("data as a list", "data: [digits]\n", "data: expected a mapping, got ['digits']"),
    Bad("unknown dataset", "data: {name: imagenet}\n", "data.name: got 'imagenet', expected one of 'cifar10', "
        "'cifar100', 'mnist', 'fashion_mnist', 'higgs', 'digits', 'synthetic'"),
    Bad("dataset null", "data: {name: null}\n", "data.name: got null, expected one of 'cifar10', 'cifar100', "
        "'mnist', 'fashion_mnist', 'higgs', 'digits', 'synthetic'"),
    Bad("validation null", "data: {validation: }\n",
        "data.validation: got null, expected one of 'holdout', 'test', 'none'"),
    Bad("image_size 100000", "data: {image_size: 100000}\n",
        "data.image_size: got 100000, expected null or an integer in 1..256"),
    Bad("channels 0", "data: {channels: 0}\n", "data.channels: got 0, expected null or an integer in 1..4"),
    Bad("val_size 1.5", "data: {val_size: 1.5}\n",
        "data.val_size: got 1.5, expected a fraction in (0, 1) or a whole count"),
    Bad("crop_padding -1", "data: {crop_padding: -1}\n", "data.crop_padding: got -1, expected an integer in 0..64"),
    Bad("mean without std", "data: {mean: [0.5]}\n", "data: give both mean and std, or neither"),
    Bad("empty mean and std", "data: {mean: [], std: []}\n",
        "data.mean/std: got 0 and 0 values, expected one per image channel in each"),
    Bad("std 0", "data: {mean: [0.5], std: [0.0]}\n", "data.std: got [0.0], expected positive numbers"),
    Bad("synthetic too large", "data: {name: synthetic, train_size: 90000000}\n", "data.train_size: synthetic data "
        "is held in memory: train_size + test_size must be at most 10,000,000"),
    Bad("model as a number", "model: 5\n", "model: expected a name or a mapping with 'name', got 5"),
    Bad("model without a name", "model: {width: 2}\n", "model.name: missing; allowed: cifar_cnn, ldlt_mlp, mlp, "
        "mnist_cnn, mobilenet, resnet34, vgg19"),
    Bad("vgg width 0", "model: {name: vgg19, width: 0}\n", "model.width: got 0.0, expected a number > 0"),
    Bad("momentum 1.0", "optimizer: {name: sgd, momentum: 1.0}\n",
        "optimizer.momentum: got 1.0, expected a number in [0, 1)"),
    Bad("misspelt option", "optimizer: {name: sgd, momentun: 0.9}\n", "optimizer: unknown option 'momentun'; "
        "allowed options: lr, momentum, nesterov, weight_decay"),
    Bad("unknown optimizer", "optimizer: rmsprop\n", "optimizer.name: unknown optimizer 'rmsprop'; allowed: adam, "
        "adamw, sgd"),
    Bad("milestones decreasing", "schedule: {name: multistep, milestones: [30, 10]}\n",
        "schedule.milestones: got (30, 10), expected increasing epochs >= 1"),
    Bad("milestones as text", "schedule: {name: multistep, milestones: '30,60'}\n",
        "schedule.milestones: got '30,60', expected a list of an integer"),
    Bad("T_max 0", "schedule: {name: cosine, T_max: 0}\n", "schedule.T_max: got 0, expected a number > 0"),
    Bad("strategy with a schedule", "strategy: epoch\nschedule: cosine\n", "strategy: 'epoch' sets the learning "
        "rate itself, so schedule must be 'constant' (got 'cosine')"),
    Bad("activation_samples 0", "probes: {activation_samples: 0}\n",
        "probes.activation_samples: got 0, expected an integer in 1..65,536"),
    Bad("grad_norm as a number", "probes: {grad_norm: 5}\n", "probes.grad_norm: got 5, expected a string or null"),
    # ---- valid settings, data that is not there or cannot be split so (found before the run's lock)
    Bad("dataset missing", "data: {name: cifar10, root: '{tmp}/nodata'}\n", "data: dataset 'cifar10' not found at "
        "{tmp}/nodata/cifar-10-batches-py: download cifar-10-python.tar.gz from "
        "https://www.cs.toronto.edu/~kriz/cifar.html and extract it there (giving cifar-10-batches-py/), or set "
        "data.download: true on a machine with network access"),
    Bad("MNIST missing", "data: {name: mnist, root: '{tmp}/nodata'}\n", "data: dataset 'mnist' not found at "
        "{tmp}/nodata/MNIST/raw (no train-images-idx3-ubyte or train-images-idx3-ubyte.gz): put the four IDX files "
        "(train/t10k images and labels, .gz or unpacked) in MNIST/raw/ there, or set data.download: true on a "
        "machine with network access"),
    Bad("Fashion-MNIST altered", "data: {name: fashion_mnist, root: '{tmp}/data'}\n", "data: {tmp}/data/"
        "FashionMNIST/raw/train-images-idx3-ubyte.gz: its content does not match the published Fashion-MNIST file "
        "train-images-idx3-ubyte (SHA-256 of the unpacked data 18e162097f3b72c5..., expected c59f468a2f672dc8...): the "
        "copy is damaged or altered. Any faithful copy passes, packed or not (a Debian package, a mirror, another "
        "machine's cache); or set data.verify: false to use this one anyway", setup=_altered_fashion),
    Bad("more classes than the data", "data: {num_classes: 20}\n",
        "data.num_classes: 20 asked, 'digits' has 10 classes"),
    Bad("val_size above the train split", "data: {val_size: 5000}\n",
        "data.val_size: 5000 leaves none of the 1,437 training samples to train on"),
    Bad("train_size below the classes", "data: {train_size: 5}\n", "data.train_size: 5 of 1,437 samples cannot "
        "be taken stratified by class (The test_size = 5 should be greater or equal to the number of classes = 10)"),
    Bad("mean/std of 3 channels on grey images", "data: {mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2]}\n",
        "data.mean/std have 3 channels; the images have 1"),
    Bad("an image network on a table", "data: {name: synthetic}\nmodel: {name: vgg19, width: 0.125}\n",
        "model: 'vgg19' cannot take the inputs of dataset 'synthetic' (samples of shape (28,), 2 classes): it is "
        "an image network (it takes channels and an image size), and these samples are not images"),
    Bad("a CUDA device this machine lacks", "device: cuda:99\n",
        "device: 'cuda:99' asked, but CUDA is not available on this machine" if NO_CUDA else
        f"device: 'cuda:99' asked, but this machine has {torch.cuda.device_count()} CUDA device(s)"),
]


def _write_case(case: Bad, folder: Path) -> Path:
    if case.setup is not None:
        case.setup(folder)
    path = folder / "run.yaml"
    if case.kind == "folder":
        path.mkdir()
    elif case.kind == "file":
        content = case.content.replace("{tmp}", str(folder)) if isinstance(case.content, str) else case.content
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize("case", BAD_RUN_CONFIGS, ids=[c.label for c in BAD_RUN_CONFIGS])
def test_bad_run_config_is_rejected_cleanly(case, tmp_path, capsys):
    """``hpnb train`` (in this process, as ``python -m hpnb.cli`` runs it): exit 2, one line naming the file and
    the key, nothing written. The issue's cases are run again as real processes below."""
    with fault_case("bad run configs (hpnb train)"):
        path = _write_case(case, tmp_path)
        store = tmp_path / "store"
        before = sorted(p.name for p in tmp_path.iterdir())
        code = cli.main(["train", str(path), "--store", str(store)])
        err = capsys.readouterr().err
        assert err == f"error: {path}: {case.message.replace('{tmp}', str(tmp_path))}\n"
        assert code == 2
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # no store folder, nothing else either


def test_enough_bad_inputs():
    assert len(BAD_RUN_CONFIGS) >= 50
    assert len({c.label for c in BAD_RUN_CONFIGS}) == len(BAD_RUN_CONFIGS)


def hpnb(*args, cwd, env=None, preexec_fn=None, wrap=()):
    """``python -m hpnb.cli ARGS`` as a user runs it."""
    environ = {**os.environ, "HPNB_PROGRESS": "0", "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1",
               **(env or {})}
    return subprocess.run([*wrap, sys.executable, "-m", "hpnb.cli", *args], cwd=cwd, capture_output=True,
                          text=True, env=environ, preexec_fn=preexec_fn, timeout=300)


ISSUE_CASES = ("empty file", "weight_decay .inf", "binary garbage", "dataset missing")


def test_issue_cases_in_a_real_process(tmp_path):
    for label in ISSUE_CASES:
        case = next(c for c in BAD_RUN_CONFIGS if c.label == label)
        folder = tmp_path / label.replace(" ", "_")
        folder.mkdir()
        path = _write_case(case, folder)
        out = hpnb("train", path.name, cwd=folder)  # the default store, ./outputs/runs, must not appear
        assert out.stderr == f"error: run.yaml: {case.message.replace('{tmp}', str(folder))}\n", label
        assert out.returncode == 2 and out.stdout == ""
        assert sorted(p.name for p in folder.iterdir()) == ["run.yaml"]


# =========================================================================== store faults
PROBED = tiny_dict(probes={"grad_norm": "conv.weight", "activation_variance": True})
OTHER = tiny_dict(seed=7)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A store holding the finished probed run (and another run), and the reference results to compare with."""
    root = tmp_path_factory.mktemp("template") / "runs"
    store = RunStore(root)
    run = train(PROBED, store=store)
    other = train(OTHER, store=store)
    reference = {"run": run, "weights": store.load_checkpoint(run.config).model,
                 "files": {p.name: p.read_bytes() for p in run.path.iterdir()}}
    assert sorted(reference["files"]) == ["activations.csv", "checkpoint.pt", "config.json", "grad_norms.csv",
                                          "history.csv", "manifest.json", "summary.json"]
    return root, reference, other


def _same_result(got, reference) -> None:
    ref = reference["run"]
    assert got.history.drop(columns=TIMING).equals(ref.history.drop(columns=TIMING))
    assert list(got.history.dtypes) == list(ref.history.dtypes)
    assert {k: v for k, v in got.summary.items() if k not in SUMMARY_TIMING} == \
        {k: v for k, v in ref.summary.items() if k not in SUMMARY_TIMING}
    assert got.grad_norms.equals(ref.grad_norms) and got.activations.equals(ref.activations)


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flip(data: bytes) -> bytes:
    out = bytearray(data)
    for i in (len(data) // 3, len(data) // 2, len(data) - 2):
        out[i] ^= 0xFF
    return bytes(out)


def _garbage(data: bytes) -> bytes:
    return random.Random(len(data)).randbytes(max(64, len(data) // 4))


FAULTS = {"truncated": _truncate, "bytes flipped": _flip, "deleted": None, "replaced by garbage": _garbage}
FILES = ["config.json", "history.csv", "summary.json", "manifest.json", "grad_norms.csv", "activations.csv",
         "checkpoint.pt"]


def _copy_store(template: Path, tmp_path: Path) -> RunStore:
    shutil.copytree(template, tmp_path / "runs")
    return RunStore(tmp_path / "runs")


def _quarantined(store: RunStore) -> list[Path]:
    folder = store.root / ".quarantine"
    return sorted(folder.iterdir()) if folder.exists() else []


def _clean_afterwards(store: RunStore, cfg: RunConfig) -> None:
    """The run is whole again and nothing is left over: verified, no lock file, no partial write."""
    status, _, _ = store.inspect(store.folder(cfg), verify=True)
    assert status == "finished"
    assert not list(store.root.glob(".*.lock")) and not list(store.root.rglob(".*.tmp"))


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("fault", list(FAULTS))
def test_damaged_file_of_a_finished_run(finished, tmp_path, name, fault):
    """A damaged results file or manifest: the folder is quarantined as it was, the run resumes from its
    checkpoint (which carries its own checksum) and ends equal. A damaged checkpoint of a finished run is benign
    by design (the results are whole without it): the run stays cached, ``hpnb runs --verify`` reports it, and
    reading the checkpoint moves it to the quarantine."""
    with fault_case("store faults: files of a finished run"):
        template, reference, _ = finished
        store = _copy_store(template, tmp_path)
        cfg = reference["run"].config
        path = store.folder(cfg) / name
        if FAULTS[fault] is None:
            path.unlink()
        else:
            path.write_bytes(FAULTS[fault](path.read_bytes()))
        damaged = path.read_bytes() if path.exists() else None
        got = train(PROBED, store=store)
        _same_result(got, reference)
        kept = _quarantined(store)
        if name == "checkpoint.pt":
            assert got.cached and not kept
            if damaged is not None:
                assert store.inspect(store.folder(cfg), verify=True)[0].startswith("damaged: checkpoint.pt")
                assert store.load_checkpoint(cfg) is None
                [kept] = _quarantined(store)
                assert (kept / "checkpoint.pt").read_bytes() == damaged  # moved aside as it was
            assert store.load(cfg, quarantine=False) is not None  # the results stay valid
        else:
            assert not got.cached
            final = store.load_checkpoint(cfg).model
            assert all(torch.equal(final[k], reference["weights"][k]) for k in final)
            if name == "manifest.json" and damaged is None:
                assert not kept  # no manifest reads as a run killed before its last write: resumed in place
            else:
                [kept] = kept
                assert (kept / "QUARANTINED.txt").exists()
                if damaged is None:
                    assert not (kept / name).exists()
                else:
                    assert (kept / name).read_bytes() == damaged  # kept as it was found
                assert {p.name for p in kept.iterdir()} >= {"checkpoint.pt", "QUARANTINED.txt"}
            _clean_afterwards(store, cfg)


def _unfinish(store: RunStore, cfg: RunConfig) -> None:
    manifest_path = store.folder(cfg) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({"config.json": manifest["config.json"]}))


def _dead_holder(store: RunStore, cfg: RunConfig) -> None:
    """A process that takes the run's lock and is killed with it held."""
    code = ("import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print(1, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(store.lock_path(cfg))], stdout=subprocess.PIPE)
    proc.stdout.readline()
    proc.kill()
    proc.wait()


def _other_checkpoint(store: RunStore, cfg: RunConfig, other) -> None:
    _unfinish(store, cfg)
    shutil.copy(store.folder(other.config) / "checkpoint.pt", store.folder(cfg) / "checkpoint.pt")


def _other_folder(store: RunStore, cfg: RunConfig, other) -> None:
    shutil.rmtree(store.folder(cfg))
    shutil.copytree(store.folder(other.config), store.folder(cfg))


FOLDER_FAULTS = {
    "empty run folder": lambda s, c, o: [p.unlink() for p in s.folder(c).iterdir()],
    "only a checkpoint": lambda s, c, o: [p.unlink() for p in s.folder(c).iterdir() if p.name != "checkpoint.pt"],
    "killed before the manifest": lambda s, c, o: _unfinish(s, c),
    "stale partial writes": lambda s, c, o: (_unfinish(s, c), (s.folder(c) / ".checkpoint.pt.99999.tmp").write_bytes(
        CHECKPOINT_MAGIC + b"partial"), (s.folder(c) / ".manifest.json.99998.tmp").write_bytes(b"{")),
    "lock file of a dead process": lambda s, c, o: (_unfinish(s, c), _dead_holder(s, c)),
    "another run's checkpoint": _other_checkpoint,
    "another run's folder": _other_folder,
}


@pytest.mark.parametrize("fault", list(FOLDER_FAULTS))
def test_folder_faults(finished, tmp_path, fault):
    """Faults of the folder as a whole; a foreign checkpoint or folder is detected by the config hash it holds."""
    with fault_case("store faults: run folders"):
        template, reference, other = finished
        store = _copy_store(template, tmp_path)
        cfg = reference["run"].config
        FOLDER_FAULTS[fault](store, cfg, other)
        got = train(PROBED, store=store)
        _same_result(got, reference)
        final = store.load_checkpoint(cfg).model
        assert all(torch.equal(final[k], reference["weights"][k]) for k in final)
        kept = _quarantined(store)
        assert len(kept) == {"another run's checkpoint": 1, "another run's folder": 2}.get(fault, 0)
        assert all((k / "QUARANTINED.txt").exists() for k in kept)
        _clean_afterwards(store, cfg)
        assert store.load(other.config, quarantine=False) is not None  # the other run is untouched


# =========================================================================== read-only store, full disk
NEW = tiny_dict(seed=3)


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _old_runs_intact(store: RunStore, before: dict, reference) -> None:
    assert _snapshot(store.root) == before
    assert store.inspect(store.folder(reference["run"].config), verify=True)[0] == "finished"


def _prepare(finished, tmp_path) -> tuple[RunStore, dict, Path]:
    template, reference, _ = finished
    store = _copy_store(template, tmp_path)
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(NEW))
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(PROBED))
    return store, _snapshot(store.root), tmp_path / "new.yaml"


def _read_only_wrapper(root: Path) -> tuple[tuple, str]:
    """How to run a command with ``root`` read-only, and the reason the kernel gives: as an ordinary user the
    mode bits do it; root ignores them, so root bind-mounts the folder read-only in a private mount namespace."""
    if os.geteuid() != 0:
        return (), "Permission denied"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro '{root}' '{root}'"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"running as root without a way to make a folder read-only (unshare/mount: "
                    f"{probe.stderr.strip()})")
    script = f"mount --bind -o ro '{root}' '{root}' && exec \"$@\""
    return ("unshare", "-m", "sh", "-c", script, "sh"), "Read-only file system"


def test_read_only_store(finished, tmp_path):
    """A new run in a read-only store: exit 1 naming the store; finished runs are still served from it."""
    with fault_case("read-only store"):
        store, before, new = _prepare(finished, tmp_path)
        wrap, reason = _read_only_wrapper(store.root)
        if not wrap:
            for p in [store.root, *store.root.rglob("*")]:
                p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            out = hpnb("train", str(new), "--store", str(store.root), cwd=tmp_path, wrap=wrap)
            lock = store.lock_path(RunConfig.from_dict(NEW))
            assert out.stderr == (f"error: cannot write to the run store {store.root}: {reason} ({lock}); the runs "
                                  f"it holds are intact\n")
            assert out.returncode == 1
            cached = hpnb("train", str(tmp_path / "old.yaml"), "--store", str(store.root), cwd=tmp_path, wrap=wrap)
            assert cached.returncode == 0 and "finished (cached)" in cached.stdout, cached.stderr
        finally:
            for p in [store.root, *store.root.rglob("*")]:
                p.chmod(0o755 if p.is_dir() else 0o644)
        _old_runs_intact(store, before, finished[1])


def _file_size_limit(limit: int):
    def apply():  # in the child: writes past ``limit`` bytes fail with EFBIG instead of killing it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return apply


def _after_full_disk(store: RunStore, before: dict, finished, out, reason: str, tmp_path: Path) -> None:
    cfg = RunConfig.from_dict(NEW)
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith(f"error: cannot write to the run store {store.root}: {reason} (")
    assert out.stderr.endswith("); the runs it holds are intact\n") and "Traceback" not in out.stderr
    assert not store.folder(cfg).exists()  # its first checkpoint could not be written: no half folder
    _old_runs_intact(store, before, finished[1])


def test_file_size_limit_as_a_full_disk(finished, tmp_path):
    """A full disk without privileges: a file-size limit makes the first checkpoint's write fail (EFBIG). The
    error names the store and nothing is left half-written (the run with room again: test_full_disk)."""
    with fault_case("disk full"):
        store, before, new = _prepare(finished, tmp_path)
        out = hpnb("train", str(new), "--store", str(store.root), cwd=tmp_path, preexec_fn=_file_size_limit(100_000))
        _after_full_disk(store, before, finished, out, "File too large", tmp_path)


@contextlib.contextmanager
def _tiny_tmpfs(folder: Path, size: str):
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs mount, which needs root (the file-size-limit test runs instead)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_full_disk(finished, tmp_path):
    """A real full disk (ENOSPC): a 4 MiB tmpfs holding the store, filled but for 64 KiB. With room again, the
    same command trains the run."""
    with _tiny_tmpfs(tmp_path / "disk", "4m") as disk, fault_case("disk full"):
        template, reference, _ = finished
        shutil.copytree(template, disk / "runs")
        store = RunStore(disk / "runs")
        (tmp_path / "new.yaml").write_text(yaml.safe_dump(NEW))
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * (free - 64 * 1024))
        before = _snapshot(store.root)
        out = hpnb("train", str(tmp_path / "new.yaml"), "--store", str(store.root), cwd=tmp_path)
        _after_full_disk(store, before, finished, out, "No space left on device", tmp_path)
        (disk / "filler").unlink()
        again = hpnb("train", str(tmp_path / "new.yaml"), "--store", str(store.root), cwd=tmp_path)
        assert again.returncode == 0 and "finished" in again.stdout, again.stderr


# =========================================================================== SIGKILL at random moments
# ~0.1 s an epoch and a 1 MB checkpoint; augmented, so the device generator's state must survive the kills too.
KILLED = tiny_dict(data={"name": "digits", "image_size": 16, "channels": 1, "augment": True, "val_size": 0.1},
                   batch_size=32, epochs=20)


def _stamp(path: Path):
    """Which checkpoint file is at ``path`` now (each one is a new file, renamed into place), or None."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def _writing(folder: Path) -> bool:
    return folder.is_dir() and bool(list(folder.glob(".checkpoint.pt.*.tmp")))


def _kill_repeatedly(command, cwd, env, store, cfg, moments, rng) -> tuple[int, int, list[int]]:
    """Start the training process and SIGKILL it once per moment; (kills, kills inside a write, epochs)."""
    folder, checkpoint = store.folder(cfg), store.folder(cfg) / "checkpoint.pt"
    kills, during_write, epochs_at_kill = 0, 0, []
    for moment in moments:
        before = _stamp(checkpoint)
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        if moment == "start-up":
            time.sleep(rng.uniform(0.05, 1.5))
        elif moment == "mid-write":  # poll fast for the temporary file of a checkpoint being written
            while proc.poll() is None and time.time() < deadline and not _writing(folder):
                time.sleep(0.0005)
        else:  # wait for this process's first checkpoint, then a random part of an epoch
            while _stamp(checkpoint) == before and proc.poll() is None and time.time() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.002) if moment == "after a checkpoint" else rng.uniform(0.0, 0.15))
        if proc.poll() is not None:
            break  # finished before this kill: fewer kills than planned (asserted below)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        during_write += _writing(folder)  # its temporary file outlived it: killed inside the write
        state = store.load_checkpoint(cfg, quarantine=False)
        epochs_at_kill.append(state.epoch if state is not None else 0)
    return kills, during_write, epochs_at_kill


def test_sigkill_at_random_moments_then_an_equal_finish(tmp_path):
    """≥ 10 SIGKILLs of one training process at seeded random moments: during start-up, right after a checkpoint
    appears, a random part of an epoch later, and while a checkpoint is being written (when its temporary file
    is seen). Then it runs to the end; history and final weights equal an uninterrupted run's, bit for bit on
    CPU, and no kill left a damaged run (nothing quarantined), a partial write or a lock file behind."""
    cfg = RunConfig.from_dict(KILLED)
    store = RunStore(tmp_path / "killed")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(KILLED))
    rng = random.Random(20240611)
    moments = ["start-up", "mid-write", "after a checkpoint", "within an epoch", "mid-write", "after a checkpoint",
               "within an epoch", "mid-write", "within an epoch", "mid-write"]
    # One thread: on a shared 2-core machine OpenMP's spinning threads make epoch times erratic; the
    # uninterrupted reference runs the same way, beside the killed one, so the two must agree bit for bit.
    env = {**os.environ, "HPNB_PROGRESS": "0", "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1",
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "hpnb.cli", "train", "run.yaml", "--store", str(store.root)]
    clean_store = RunStore(tmp_path / "clean")
    reference = subprocess.Popen([*command[:-1], str(clean_store.root)], cwd=tmp_path, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        kills, during_write, epochs_at_kill = _kill_repeatedly(command, tmp_path, env, store, cfg, moments, rng)
    except BaseException:
        reference.kill()
        raise
    print(f"\n{kills} kills, at epochs {epochs_at_kill}; {during_write} during a checkpoint write")
    try:
        assert kills >= 10, f"only {kills} kills before the run finished"
        assert during_write >= 1, "no kill landed during a checkpoint write"
        assert store.load(cfg, quarantine=False) is None
        finish = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert finish.returncode == 0, finish.stderr
        resumed = store.load(cfg, quarantine=False)
        assert reference.wait(timeout=120) == 0, reference.stderr.read()
        clean = clean_store.load(cfg, quarantine=False)
        assert resumed.history.drop(columns=TIMING).equals(clean.history.drop(columns=TIMING))
        final = [s.load_checkpoint(cfg).model for s in (store, clean_store)]
        assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])
        assert not (store.root / ".quarantine").exists()
        assert not list(store.root.rglob(".*.tmp")) and not list(store.root.glob(".*.lock"))
    except BaseException:
        record_fault("SIGKILL of training, then resume", False)
        raise
    for _ in range(kills):  # each kill was survived: the finish equals an uninterrupted run
        record_fault("SIGKILL of training, then resume", True)
    for _ in range(during_write):
        record_fault("  of which during a checkpoint write", True)
