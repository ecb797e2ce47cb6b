"""hpnb: reproducing published hyperparameter studies of deep-network training as notebooks."""
from .config import DataConfig, ProbeConfig, RunConfig, Spec
from .data import DataError, load_data
from .models import build_model, count_parameters
from .registry import ConfigError
from .runner import train
from .strategies import decay_sequence
from .store import RunStore
from .sweep import probe_table, sweep
from .results import ChapterResults
from .loop import Run, describe_data

__version__ = "0.1.0"

__all__ = ["RunConfig", "DataConfig", "ProbeConfig", "Spec", "ConfigError", "DataError", "Run", "RunStore",
           "train", "sweep", "probe_table", "build_model", "count_parameters", "decay_sequence", "load_data",
           "ChapterResults", "describe_data"]
