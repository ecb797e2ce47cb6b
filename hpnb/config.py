"""One validated run configuration, built from a dict or YAML, with a stable content hash."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import yaml

from .registry import INT64, ConfigError, YamlTrap, coerce, show


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
        # Upper bounds: past them a run exhausts memory or a library rejects the value after the run started.
        ranges = {"num_classes": 1000, "train_size": 10**8, "test_size": 10**8, "image_size": 256, "channels": 4}
        for key, most in ranges.items():
            value = getattr(self, key)
            if value is not None and not 1 <= value <= most:
                raise ConfigError(f"{where}.{key}: got {show(value)}, expected null or an integer in 1..{most:,}")
        if self.name == "synthetic" and (self.train_size or 20_000) + (self.test_size or 5_000) > 10**7:
            raise ConfigError(f"{where}.train_size: synthetic data is held in memory: train_size + test_size "
                              f"must be at most 10,000,000")
        if self.val_size <= 0 or (self.val_size >= 1 and self.val_size != int(self.val_size)):
            raise ConfigError(f"{where}.val_size: got {show(self.val_size)}, expected a fraction in (0, 1) or a "
                              f"whole count")
        if not 0 <= self.split_seed < 2**32:  # scikit-learn's random_state range
            raise ConfigError(f"{where}.split_seed: got {show(self.split_seed)}, expected an integer in 0..2**32-1")
        if not 0 <= self.crop_padding <= 64:
            raise ConfigError(f"{where}.crop_padding: got {show(self.crop_padding)}, expected an integer in 0..64")
        if not 1 <= self.n_features <= 4096:
            raise ConfigError(f"{where}.n_features: got {show(self.n_features)}, expected an integer in 1..4,096")
        if (self.mean is None) != (self.std is None):
            raise ConfigError(f"{where}: give both mean and std, or neither")
        if self.mean is not None and (not self.mean or len(self.mean) != len(self.std)):
            raise ConfigError(f"{where}.mean/std: got {len(self.mean)} and {len(self.std)} values, expected one per "
                              f"image channel in each")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ConfigError(f"{where}.std: got {show(list(self.std))}, expected positive numbers")
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
        if not 1 <= self.activation_samples <= 65_536:
            raise ConfigError(f"{where}.activation_samples: got {show(self.activation_samples)}, expected an "
                              f"integer in 1..65,536")


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
    eval_batch_size: int = 1024  # samples per evaluation pass, shared by an ensemble's members
    test_every_epoch: bool = True  # False: test metrics only after the last epoch
    seed: int = 0
    probes: ProbeConfig = field(default_factory=ProbeConfig)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast on CUDA
    channels_last: bool = True  # memory format of conv nets on CUDA, and on a CPU of models.CHANNELS_LAST_ON_CPU
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
        """Read and validate a YAML run config; every error names the file (see :func:`read_yaml_mapping`)."""
        return cls.from_dict(read_yaml_mapping(path, "run settings"), source=str(path))

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


# --------------------------------------------------------------------------- reading YAML files
MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; anything this large is not one
MAX_VALUES = 100_000  # after expanding aliases ("billion laughs" stays cheap to reject)


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader (YAML 1.1, as papermill and every other PyYAML reader of the same file), except that
    a key given twice is an error, and integers YAML 1.1 reads unlike most people (``010`` is octal 8,
    ``1:30`` is 90) are kept as :class:`YamlTrap` text, which :func:`registry.coerce` rejects by key."""

    def construct_mapping(self, node, deep=False):
        first = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue  # merged keys may be overridden; complex keys are the base class's to reject
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in first:
                raise ConfigError(f"line {line}: key {show(key)} appears twice (first on line {first[key]}); "
                                  f"YAML would silently keep only the last")
            first[key] = line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        text = str(node.value)
        digits = text.lstrip("+-").replace("_", "")
        if ":" in digits:
            return YamlTrap(text, f"YAML 1.1 reads {text} as a base-60 number; write the number itself")
        if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xXbB":
            return YamlTrap(text, f"YAML 1.1 reads a number with a leading 0 as octal ({text} is "
                                  f"{super().construct_yaml_int(node)}); write it without the leading 0")
        if len(digits) > 4000:  # Python refuses to convert such strings
            return YamlTrap(text[:12] + "...", f"an integer of {len(digits)} digits")
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node):
        if ":" in str(node.value):
            text = str(node.value)
            return YamlTrap(text, f"YAML 1.1 reads {text} as a base-60 number; write the number itself")
        return super().construct_yaml_float(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)


def _describe(value) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, bool):
        return f"the boolean {show(value)}"
    if isinstance(value, (int, float)):
        return f"the number {show(value)}"
    if isinstance(value, str):
        return f"the text {show(value)}"
    return f"a {type(value).__name__}"


def _too_large(value, limit: int) -> str | None:
    """Why ``value`` cannot be a config (it contains itself, or holds more than ``limit`` values once YAML
    aliases are expanded), or None. Stops early, so an alias bomb costs ``limit`` steps, not its size."""
    count, stack, path = 0, [(value, False)], set()
    while stack:
        item, leaving = stack.pop()
        if leaving:
            path.discard(id(item))
            continue
        count += 1
        if count > limit:
            return f"more than {limit:,} values once YAML aliases are expanded"
        if isinstance(item, (dict, list)):
            if id(item) in path:
                return "a value that contains itself (a recursive YAML alias)"
            path.add(id(item))
            stack.append((item, True))
            stack.extend((v, False) for v in (item.values() if isinstance(item, dict) else item))
    return None


def read_yaml_mapping(path: str | Path, what: str = "settings") -> dict:
    """The top-level mapping of the YAML file ``path``, read strictly; anything else raises ConfigError naming
    the file: missing, not a regular file, empty or only comments, too large, binary (NUL bytes), UTF-16,
    not UTF-8, not valid YAML (with line and column), a key given twice, deeper or larger than any config,
    or a document that is null, a list or a scalar. ``what`` names the expected content in messages
    ("run settings", "chapter parameters")."""
    path = Path(path)
    expected = f"expected a mapping of {what}"
    try:
        if not path.exists():
            raise ConfigError(f"{path}: no such config file")
        if path.is_dir():
            raise ConfigError(f"{path}: is a folder, not a config file")
        if not path.is_file():
            raise ConfigError(f"{path}: not a regular file; {expected} in a YAML file")
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {size:,} bytes is too large for a config file (at most "
                              f"{MAX_CONFIG_BYTES:,}); {expected}")
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read: {err.strerror or err}") from None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ConfigError(f"{path}: UTF-16 text; save it as UTF-8")
    if b"\0" in data:
        raise ConfigError(f"{path}: binary data (a NUL byte at offset {data.index(0)}), not a YAML text file; "
                          f"{expected}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        byte = f"byte 0x{data[err.start]:02x} at offset {err.start}"
        sample = data[:4096]
        controls = sum(b < 32 and b not in (9, 10, 13) or b == 127 for b in sample)
        if controls or sum(b >= 128 for b in sample) > len(sample) // 4:  # not text in any 8-bit encoding
            raise ConfigError(f"{path}: binary data (not UTF-8 text: {byte}), not a YAML text file; "
                              f"{expected}") from None
        raise ConfigError(f"{path}: not UTF-8 text ({byte}); save it as UTF-8") from None
    if not text.strip():
        raise ConfigError(f"{path}: empty; {expected}")
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.reader.ReaderError as err:
        character = chr(err.character) if isinstance(err.character, int) else err.character
        raise ConfigError(f"{path}: not valid YAML: character {character!r} at offset {err.position} is a "
                          f"control character, not allowed in YAML") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(" ".join(filter(None, (err.context, err.problem))).split())
        if "'\\t'" in problem:
            problem += " (YAML indents with spaces, not tabs)"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config; {expected}") from None
    if raw is None:
        only_comments = all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())
        raise ConfigError(f"{path}: {'empty (only comments)' if only_comments else 'holds only null'}; {expected}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: holds {_describe(raw)}, not a mapping; {expected}")
    problem = _too_large(raw, MAX_VALUES)
    if problem:
        raise ConfigError(f"{path}: {problem}; {expected}")
    return raw


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
            raise ConfigError(f"{key}: got {show(getattr(cfg, key))}, expected an integer >= 1")
    if cfg.epochs > 100_000:
        raise ConfigError(f"epochs: got {show(cfg.epochs)}, expected an integer in 1..100,000")
    if not 0 <= cfg.seed < INT64:
        raise ConfigError(f"seed: got {show(cfg.seed)}, expected an integer >= 0")
    if not (cfg.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d{1,3}", cfg.device)):
        raise ConfigError(f"device: got {show(cfg.device)}, expected auto, cpu, cuda or cuda:N")
    if cfg.strategy.name != "none" and cfg.schedule.name != "constant":
        raise ConfigError(
            f"strategy: {cfg.strategy.name!r} sets the learning rate itself, so schedule must be 'constant' "
            f"(got {cfg.schedule.name!r})"
        )
    if cfg.data.validation == "none" and cfg.strategy.name in ("cutoff", "oscillation"):
        raise ConfigError(f"strategy: {cfg.strategy.name!r} needs a validation loss; data.validation is 'none'")
