import copy
import os
from pathlib import Path

import pytest

os.environ.setdefault("HPNB_PROGRESS", "0")
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def tiny_dict(**overrides) -> dict:
    """A run that trains in well under a second: the MNIST net on 12×12 digits."""
    raw = {
        "data": {"name": "digits", "image_size": 12, "channels": 1, "val_size": 0.1},
        "model": {"name": "mnist_cnn"},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "epochs": 3,
        "batch_size": 64,
        "device": "cpu",
    }
    raw = copy.deepcopy(raw)
    for key, value in overrides.items():
        node = raw
        *parents, last = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return raw


@pytest.fixture
def tiny():
    return tiny_dict


@pytest.fixture
def store(tmp_path):
    from hpnb import RunStore

    return RunStore(tmp_path / "runs")
