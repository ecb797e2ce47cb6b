"""Datasets by name, split as the studies need, held whole as tensors on the run's device.

Images are kept as uint8 (N, C, H, W); batches are cut, augmented and normalised on the device by
``hpnb.batches``, so the loop has no worker processes and no per-image Python.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from .config import DataConfig

# Standard per-channel statistics; digits and tabular data are standardised from their train split.
STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
}

HOW_TO_OBTAIN = {
    "cifar10": "download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and extract it "
    "there (giving cifar-10-batches-py/), or set data.download: true on a machine with network access",
    "cifar100": "download cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and extract it "
    "there (giving cifar-100-python/), or set data.download: true on a machine with network access",
    "mnist": "put the four IDX files (train/t10k images and labels, .gz or unpacked) in MNIST/raw/ there, "
    "or set data.download: true on a machine with network access",
    "fashion_mnist": "put the four Fashion-MNIST IDX files (.gz or unpacked) in FashionMNIST/raw/ there (Debian's "
    "dataset-fashion-mnist package installs them in /usr/share/datasets/fashion-mnist: link or copy that folder), "
    "or set data.download: true on a machine with network access",
    "higgs": "download HIGGS.csv.gz from the UCI Machine Learning Repository (dataset 280) into that folder",
}


class DataError(RuntimeError):
    """The data a run needs is missing or failed its checks; raised before any training."""


def data_root(cfg: DataConfig) -> Path:
    """The configured root, else $HPNB_DATA, else ~/.cache/hpnb/data."""
    return Path(cfg.root or os.environ.get("HPNB_DATA") or Path.home() / ".cache" / "hpnb" / "data").expanduser()


@dataclass
class TensorSet:
    x: torch.Tensor  # uint8 images (N, C, H, W) or float32 features (N, F)
    y: torch.Tensor  # int64 labels

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device) -> "TensorSet":
        return TensorSet(self.x.to(device), self.y.to(device))

    def subset(self, index) -> "TensorSet":
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return TensorSet(self.x[index], self.y[index])


@dataclass
class DataSplits:
    train: TensorSet
    val: Optional[TensorSet]
    test: Optional[TensorSet]
    num_classes: int
    mean: Optional[torch.Tensor]  # per-channel statistics for images; None for tabular data
    std: Optional[torch.Tensor]
    description: str

    @property
    def is_image(self) -> bool:
        return self.train.x.dim() == 4

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


# --------------------------------------------------------------------------- raw sources (CPU tensors)
def _missing(name: str, path: Path) -> DataError:
    return DataError(f"dataset {name!r} not found at {path}: {HOW_TO_OBTAIN[name]}")


def _download_failed(name: str, path: Path, err: Exception) -> DataError:
    reason = " ".join(str(err).split())[:240] or type(err).__name__
    return DataError(f"dataset {name!r} could not be downloaded to {path} ({reason}); instead, "
                     f"{HOW_TO_OBTAIN[name]}")


# SHA-256 of the unpacked IDX files (the bytes inside the .gz). torchvision checks MD5s of the .gz files,
# which any recompression changes (Debian's dataset-fashion-mnist recompressed all four): checking the
# content instead accepts every faithful copy, packed or not, and still rejects damaged or altered data.
# Provenance: MNIST t10k: computed here from the official files (their .gz match torchvision's MD5s).
# Fashion-MNIST (all four): computed here from Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1,
# and equal to an independently published table of the same digests. MNIST train: from a published table
# whose t10k entries equal the digests computed here; the train files themselves were not available here.
IDX_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
PRETTY = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
IDX_MAGIC = {"images": (0x0803, 3), "labels": (0x0801, 1)}  # unsigned bytes, 3 or 1 dimensions


def read_idx(path: Path, kind: str) -> tuple[bytes, np.ndarray]:
    """The raw bytes and the array of an IDX file (``kind`` "images" or "labels"), .gz or unpacked.

    Raises DataError naming the file when it is not a complete gzip stream, its header is not an IDX header of
    that kind, or it holds fewer or more bytes than its header announces (truncated or padded).
    """
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{path}: not a complete gzip file ({err}); the copy is damaged or truncated") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read: {err.strerror or err}") from None
    magic, ndim = IDX_MAGIC[kind]
    header = 4 + 4 * ndim
    if len(data) < header or int.from_bytes(data[:4], "big") != magic:
        raise DataError(f"{path}: not an IDX {kind} file (expected the header 0x{magic:08x} and {ndim} "
                        f"dimension(s)); the file is damaged or is not MNIST-format data")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(f"{path}: {state}: its header announces {' x '.join(map(str, shape))} bytes of data "
                        f"({expected:,} bytes with the header), it holds {len(data):,}")
    return data, np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _verify_idx(name: str, stem: str, path: Path, data: bytes) -> None:
    known = IDX_SHA256[name].get(stem)
    digest = hashlib.sha256(data).hexdigest()
    if known is not None and digest != known:
        raise DataError(
            f"{path}: its content does not match the published {PRETTY[name]} file {stem} (SHA-256 of the "
            f"unpacked data {digest[:16]}..., expected {known[:16]}...): the copy is damaged or altered. Any faithful "
            f"copy passes, packed or not (a Debian package, a mirror, another machine's cache); or set "
            f"data.verify: false to use this one anyway")


def _idx_split(cls, root: Path, train: bool, verify: bool, download: bool):
    """MNIST-style IDX files of one split, .gz or unpacked, read directly (nothing is written next to them, so a
    read-only copy such as Debian's works); with ``verify`` the unpacked content is checked against the
    published SHA-256 digests."""
    name = "mnist" if cls.__name__ == "MNIST" else "fashion_mnist"
    raw = root / cls.__name__ / "raw"
    prefix = "train" if train else "t10k"
    if download and not raw.exists():
        try:
            cls(str(root), train=train, download=True)
        except Exception as err:  # no network, mirror down, …
            raise _download_failed(name, raw, err) from None
    arrays = {}
    for kind, stem in (("images", f"{prefix}-images-idx3-ubyte"), ("labels", f"{prefix}-labels-idx1-ubyte")):
        # An unpacked copy is what torchvision reads once it has extracted the .gz: prefer it, and verify it.
        path = next((p for p in (raw / stem, raw / f"{stem}.gz") if p.is_file()), None)
        if path is None:
            raise DataError(f"dataset {name!r} not found at {raw} (no {stem} or {stem}.gz): {HOW_TO_OBTAIN[name]}")
        data, arrays[kind] = read_idx(path, kind)
        if verify:
            _verify_idx(name, stem, path, data)
    images, labels = arrays["images"], arrays["labels"]
    if len(images) != len(labels):
        raise DataError(f"{raw}: {prefix} images and labels differ in number ({len(images):,} and {len(labels):,})")
    x = torch.from_numpy(images.copy()).unsqueeze(1).contiguous()
    return x, torch.from_numpy(labels.astype(np.int64))


def _cifar_split(cls, name: str, root: Path, train: bool, verify: bool, download: bool):
    folder = root / cls.base_folder
    if download and not folder.exists():
        try:
            cls(str(root), train=train, download=True)
        except Exception as err:
            raise _download_failed(name, root, err) from None
    if not folder.exists():
        raise _missing(name, folder)
    if not verify:
        class Unverified(cls):
            meta = {**cls.meta, "md5": None}  # None: torchvision checks the file exists, not its MD5

            def _check_integrity(self):
                return True
        cls = Unverified
    try:
        ds = cls(str(root), train=train)
    except RuntimeError:  # torchvision's MD5s are of the unpacked batch files: any faithful copy passes
        raise DataError(f"{folder} failed torchvision's MD5 check: its content does not match the published "
                        f"{name} data (damaged or altered); extract a faithful copy of the archive there, or "
                        f"set data.verify: false to use it anyway") from None
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError) as err:  # unverified and damaged
        raise DataError(f"{folder}: cannot be read as {name} ({type(err).__name__}: {err})") from None
    x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    return x, torch.as_tensor(ds.targets, dtype=torch.long)


@functools.lru_cache(maxsize=8)
def _load_official(name: str, root: str, verify: bool, download: bool):
    """The official (train, test) splits as CPU tensors; cached per process so sweeps load once."""
    from torchvision import datasets

    root = Path(root)
    if name in ("mnist", "fashion_mnist"):
        cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
        return tuple(_idx_split(cls, root, train, verify, download) for train in (True, False))
    if name in ("cifar10", "cifar100"):
        cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
        return tuple(_cifar_split(cls, name, root, train, verify, download) for train in (True, False))
    raise ValueError(name)


def read_higgs(path: Path, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``rows`` rows of HIGGS.csv.gz: label first, then 28 features."""
    import pandas as pd

    if not path.is_file():
        raise _missing("higgs", path.parent)
    try:
        frame = pd.read_csv(path, header=None, nrows=rows, compression="gzip", dtype=np.float32)
    except (OSError, EOFError, gzip.BadGzipFile, ValueError) as err:
        raise DataError(f"{path} could not be read as a gzip CSV: {err}") from None
    if frame.shape[1] != 29:
        raise DataError(f"{path}: expected 29 columns (label + 28 features), found {frame.shape[1]}")
    values = frame.to_numpy()
    return torch.from_numpy(values[:, 1:].copy()), torch.from_numpy(values[:, 0].astype(np.int64))


@functools.lru_cache(maxsize=8)
def digits_images(image_size: int, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 real 8×8 digits, resized (bilinear) and replicated to uint8 (N, C, S, S)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, channels, -1, -1).contiguous()
    return x, torch.from_numpy(bunch.target.astype(np.int64))


def synthetic_tabular(n: int, n_features: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded HIGGS-like binary problem: low-level Gaussian features plus derived nonlinear ones."""
    gen = np.random.default_rng(seed)
    n_derived = max(1, n_features // 4)
    n_low = n_features - n_derived
    low = gen.standard_normal((n, n_low)).astype(np.float32)
    pairs = gen.integers(0, n_low, size=(n_derived, 2))
    derived = np.abs(low[:, pairs[:, 0]] * low[:, pairs[:, 1]])  # like invariant masses: positive, nonlinear
    w_low = gen.standard_normal(n_low) / np.sqrt(n_low)
    w_der = gen.standard_normal(n_derived)
    logit = low @ w_low + (derived - derived.mean(0)) @ w_der + 0.5 * gen.standard_normal(n)
    x = np.concatenate([low, derived], axis=1).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy((logit > 0).astype(np.int64))


# --------------------------------------------------------------------------- splitting
def stratified_take(labels: torch.Tensor, size: float | int, seed: int,
                    key: str = "size") -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, taken) with ``size`` (a fraction or a count) taken, stratified by label; a size the
    labels cannot be split by raises DataError naming the config ``key``."""
    from sklearn.model_selection import train_test_split

    size = int(size) if size >= 1 else float(size)
    if isinstance(size, int) and size >= len(labels):
        return np.arange(0), np.arange(len(labels))
    index = np.arange(len(labels))
    try:
        kept, taken = train_test_split(index, test_size=size, stratify=labels.numpy(), random_state=seed)
    except ValueError as err:  # e.g. fewer samples than classes, or a class with a single sample
        raise DataError(f"data.{key}: {size} of {len(labels):,} samples cannot be taken stratified by class "
                        f"({' '.join(str(err).split())})") from None
    return np.sort(kept), np.sort(taken)


def _official_splits(cfg: DataConfig) -> tuple[TensorSet, TensorSet, str]:
    if cfg.name in ("cifar10", "cifar100", "mnist", "fashion_mnist"):
        root = data_root(cfg)
        (xtr, ytr), (xte, yte) = _load_official(cfg.name, str(root), cfg.verify, cfg.download)
        return TensorSet(xtr, ytr), TensorSet(xte, yte), f"{cfg.name} from {root}"
    if cfg.name == "digits":
        size = cfg.image_size or 8
        x, y = digits_images(size, cfg.channels or 1)
        train_idx, test_idx = stratified_take(y, 0.2, seed=0)  # a fixed "official" test split
        full = TensorSet(x, y)
        desc = (f"scikit-learn's bundled handwritten digits (1,797 real 8×8 images) resized to "
                f"{cfg.channels or 1}×{size}×{size}")
        return full.subset(train_idx), full.subset(test_idx), desc
    if cfg.name == "synthetic":
        n_train, n_test = cfg.train_size or 20_000, cfg.test_size or 5_000
        x, y = synthetic_tabular(n_train + n_test, cfg.n_features, seed=cfg.split_seed)
        full = TensorSet(x, y)
        desc = f"a seeded synthetic {cfg.n_features}-feature binary problem (HIGGS stand-in)"
        return full.subset(range(n_train)), full.subset(range(n_train, n_train + n_test)), desc
    if cfg.name == "higgs":
        n_train, n_test = cfg.train_size or 100_000, cfg.test_size or 20_000
        path = data_root(cfg) / "HIGGS.csv.gz"
        x, y = read_higgs(path, n_train + n_test)
        if len(y) < n_train + n_test:
            raise DataError(f"{path} holds {len(y)} rows; the config asks for {n_train} + {n_test}")
        full = TensorSet(x, y)
        return full.subset(range(n_train)), full.subset(range(n_train, n_train + n_test)), f"UCI HIGGS from {path}"
    raise ValueError(cfg.name)


def load_data(cfg: DataConfig, device: torch.device | str = "cpu") -> DataSplits:
    """Load, filter, subsample and split a dataset as ``cfg`` says; the tensors end up on ``device``."""
    train, test, source = _official_splits(cfg)
    if cfg.num_classes is not None:
        available = int(train.y.max()) + 1
        if cfg.num_classes > available:
            raise DataError(f"data.num_classes: {cfg.num_classes} asked, {cfg.name!r} has {available} classes")
        train = train.subset(np.flatnonzero(train.y.numpy() < cfg.num_classes))
        test = test.subset(np.flatnonzero(test.y.numpy() < cfg.num_classes))
    if cfg.train_size is not None and cfg.name not in ("synthetic", "higgs"):
        train = train.subset(stratified_take(train.y, cfg.train_size, cfg.split_seed, "train_size")[1])
    if cfg.test_size is not None and cfg.name not in ("synthetic", "higgs"):
        test = test.subset(stratified_take(test.y, cfg.test_size, cfg.split_seed, "test_size")[1])
    val = None
    if cfg.validation == "holdout":
        kept, taken = stratified_take(train.y, cfg.val_size, cfg.split_seed, "val_size")
        if len(kept) == 0:
            raise DataError(f"data.val_size: {cfg.val_size:g} leaves none of the {len(train):,} training samples "
                            f"to train on")
        train, val = train.subset(kept), train.subset(taken)
    elif cfg.validation == "test":
        val = test
    num_classes = int(max(train.y.max(), test.y.max())) + 1

    mean = std = None
    if train.x.dim() == 4:
        if cfg.mean is not None:
            mean, std = torch.tensor(cfg.mean), torch.tensor(cfg.std)
        elif cfg.name in STATS:
            mean, std = (torch.tensor(s) for s in STATS[cfg.name])
        else:
            pixels = train.x.float().div(255).transpose(0, 1).flatten(1)
            mean, std = pixels.mean(1), pixels.std(1)
        if len(mean) != train.x.shape[1]:
            raise DataError(f"data.mean/std have {len(mean)} channels; the images have {train.x.shape[1]}")
    else:  # tabular: standardise every split with the train split's statistics
        mu, sigma = train.x.mean(0), train.x.std(0).clamp_min(1e-8)
        standardise = lambda s: TensorSet((s.x - mu) / sigma, s.y)  # noqa: E731
        holdout = val is not None and val is not test
        train, test = standardise(train), standardise(test)
        val = standardise(val) if holdout else (test if cfg.validation == "test" else None)

    if val is test:
        sizes = f"{len(train):,} train / {len(test):,} test (also the validation set)"
    else:
        sizes = f"{len(train):,} train / {len(val) if val is not None else 0:,} validation / {len(test):,} test"
    moved = {id(s): s.to(device) for s in (train, val, test) if s is not None}
    return DataSplits(
        train=moved[id(train)], val=moved.get(id(val)) if val is not None else None, test=moved[id(test)],
        num_classes=num_classes,
        mean=None if mean is None else mean.to(device), std=None if std is None else std.to(device),
        description=f"{source}; {num_classes} classes; {sizes}",
    )
