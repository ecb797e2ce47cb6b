"""One validated run configuration, built from a dict or YAML, with a stable content hash."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import yaml

from .registry import ConfigError, coerce

DATASETS = ("cifar10", "cifar100", "mnist", "fashion_mnist", "higgs", "digits", "synthetic")


@dataclass(frozen=True)
class DataConfig:
    """Which data, how it is split, and how training batches are augmented."""

    name: Literal["cifar10", "cifar100", "mnist", "fashion_mnist", "higgs", "digits", "synthetic"] = "digits"
    root: Optional[str] = None  # None: $HPNB_DATA, then ~/.cache/hpnb/data (not part of the hash)
    download: bool = False
    verify: bool = True  # torchvision's checksums of the on-disk files
    num_classes: Optional[int] = None  # keep only the first N class labels
    train_size: Optional[int] = None  # stratified subsample of the official train split
    test_size: Optional[int] = None  # stratified subsample of the official test split
    validation: Literal["holdout", "test", "none"] = "holdout"
    val_size: float = 0.1  # holdout: a fraction (< 1) or a count (>= 1) of the train split
    split_seed: int = 42
    image_size: Optional[int] = None  # digits: side the 8×8 images are resized to
    channels: Optional[int] = None  # digits: channels the grey images are replicated to
    n_features: int = 28  # synthetic tabular data
    augment: bool = False  # random crop with padding + horizontal flip, on the device
    crop_padding: int = 4
    flip: bool = True
    mean: Optional[tuple[float, ...]] = None  # None: the dataset's standard statistics
    std: Optional[tuple[float, ...]] = None

    def check(self, where: str) -> None:
        positive_or_none = ("num_classes", "train_size", "test_size", "image_size", "channels")
        for key in positive_or_none:
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"{where}.{key}: got {value!r}, expected null or an integer >= 1")
        if self.val_size <= 0 or (self.val_size >= 1 and self.val_size != int(self.val_size)):
            raise ConfigError(f"{where}.val_size: got {self.val_size!r}, expected a fraction in (0, 1) or a whole count")
        if self.crop_padding < 0:
            raise ConfigError(f"{where}.crop_padding: got {self.crop_padding!r}, expected an integer >= 0")
        if self.n_features < 1:
            raise ConfigError(f"{where}.n_features: got {self.n_features!r}, expected an integer >= 1")
        if (self.mean is None) != (self.std is None):
            raise ConfigError(f"{where}: give both mean and std, or neither")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ConfigError(f"{where}.std: got {self.std!r}, expected positive numbers")
        if self.name not in ("digits", "synthetic") and (self.image_size or self.channels):
            raise ConfigError(f"{where}: image_size/channels reshape only 'digits'; {self.name!r} keeps its own shape")


@dataclass(frozen=True)
class Spec:
    """A named component with its options, e.g. ``{name: sgd, lr: 0.1, momentum: 0.9}``."""

    name: str
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, **{k: _plain(v) for k, v in sorted(self.options.items())}}


@dataclass(frozen=True)
class ProbeConfig:
    """Measurements taken during training beyond loss and accuracy."""

    grad_norm: Optional[str] = None  # parameter name, e.g. "layers.8.conv1.weight": 2-norm every step
    activation_variance: bool = False  # per-layer output variance on a fixed batch, at init and at the end
    activation_samples: int = 256
    roc_auc: bool = False  # binary tasks: ROC-AUC on validation/test each epoch
    cka: bool = False  # linear CKA between test inputs and the last hidden layer, at init and each epoch

    def check(self, where: str) -> None:
        if self.activation_samples < 1:
            raise ConfigError(f"{where}.activation_samples: got {self.activation_samples!r}, expected >= 1")


# Settings that change how fast a run goes, not what it computes; they stay out of the hash so a
# result computed on one machine is reused on another.
EXECUTION_KEYS = ("device", "amp", "channels_last", "compile", "cuda_graphs")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: Spec = field(default_factory=lambda: Spec("mnist_cnn"))
    init: Spec = field(default_factory=lambda: Spec("default"))
    optimizer: Spec = field(default_factory=lambda: Spec("sgd", {"lr": 0.01}))
    schedule: Spec = field(default_factory=lambda: Spec("constant"))
    strategy: Spec = field(default_factory=lambda: Spec("none"))
    epochs: int = 1
    batch_size: int = 128
    drop_last: bool = False
    eval_batch_size: int = 1024
    test_every_epoch: bool = True  # False: test metrics only after the last epoch
    seed: int = 0
    probes: ProbeConfig = field(default_factory=ProbeConfig)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast on CUDA
    channels_last: bool = True  # memory format for conv nets on CUDA
    compile: bool = False  # torch.compile of the training step
    cuda_graphs: bool = True  # replay each training step from a CUDA graph (CUDA only)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, raw: dict, source: str | None = None) -> "RunConfig":
        """Build and validate; errors name the file (``source``), the key and what is allowed."""
        try:
            return _build(cls, raw)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}" if source else str(err)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        return cls.from_dict(raw, source=str(path))

    def replace(self, **changes) -> "RunConfig":
        """A copy with dotted keys changed, e.g. ``replace(**{"optimizer.lr": 0.1, "seed": 2})``."""
        raw = self.to_dict()
        for dotted, value in changes.items():
            set_dotted(raw, dotted, value)
        return RunConfig.from_dict(raw)

    # ----------------------------------------------------------------- identity
    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, Spec) else _plain(value)
        return out

    def semantic_dict(self) -> dict:
        """The resolved config without execution settings or local paths."""
        raw = self.to_dict()
        for key in EXECUTION_KEYS:
            raw.pop(key)
        raw["data"].pop("root")
        raw["data"].pop("download")
        return raw

    @property
    def hash(self) -> str:
        text = json.dumps(self.semantic_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def set_dotted(raw: dict, dotted: str, value) -> None:
    """Set ``raw["a"]["b"] = value`` for ``dotted == "a.b"``, creating sections as needed."""
    *parents, last = dotted.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {part!r} is not a section")
    node[last] = value


def _section(cls, raw, where: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in raw.items():
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r}; allowed keys: {', '.join(allowed)}")
        values[key] = coerce(value, hints[key], f"{where}.{key}")
    obj = cls(**values)
    obj.check(where)
    return obj


def _spec(raw, where: str, registry, default_name: str | None = None) -> Spec:
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a name or a mapping with 'name', got {raw!r}")
    raw = dict(raw)
    name = raw.pop("name", default_name)
    if name is None:
        raise ConfigError(f"{where}.name: missing; allowed: {', '.join(registry.names())}")
    if not isinstance(name, str):
        raise ConfigError(f"{where}.name: got {name!r}, expected one of {', '.join(registry.names())}")
    return Spec(name, registry.validate(name, raw, where))


def _build(cls, raw: dict) -> RunConfig:
    from .init import INITS
    from .models import MODELS
    from .optim import OPTIMIZERS
    from .schedules import SCHEDULES
    from .strategies import STRATEGIES

    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping, got {type(raw).__name__}")
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r}; allowed keys: {', '.join(allowed)}")
    hints = typing.get_type_hints(cls)
    specs = {"model": MODELS, "init": INITS, "optimizer": OPTIMIZERS, "schedule": SCHEDULES, "strategy": STRATEGIES}
    values = {}
    for key, value in raw.items():
        if key == "data":
            values[key] = _section(DataConfig, value, "data")
        elif key == "probes":
            values[key] = _section(ProbeConfig, value, "probes")
        elif key in specs:
            values[key] = _spec(value, key, specs[key])
        else:
            values[key] = coerce(value, hints[key], key)
    cfg = cls(**values)
    defaults = cls()
    for key in specs:  # defaults are validated too, so their options are complete
        if key not in values:
            spec = getattr(defaults, key)
            object.__setattr__(cfg, key, Spec(spec.name, specs[key].validate(spec.name, spec.options, key)))
    _check_run(cfg)
    return cfg


def _check_run(cfg: RunConfig) -> None:
    for key in ("epochs", "batch_size", "eval_batch_size"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key}: got {getattr(cfg, key)!r}, expected an integer >= 1")
    if cfg.seed < 0:
        raise ConfigError(f"seed: got {cfg.seed!r}, expected an integer >= 0")
    if not (cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:")):
        raise ConfigError(f"device: got {cfg.device!r}, expected auto, cpu, cuda or cuda:N")
    if cfg.strategy.name != "none" and cfg.schedule.name != "constant":
        raise ConfigError(
            f"strategy: {cfg.strategy.name!r} sets the learning rate itself, so schedule must be 'constant' "
            f"(got {cfg.schedule.name!r})"
        )
    if cfg.data.validation == "none" and cfg.strategy.name in ("cutoff", "oscillation"):
        raise ConfigError(f"strategy: {cfg.strategy.name!r} needs a validation loss; data.validation is 'none'")
