import gzip
import pickle
import shutil
import struct

import numpy as np
import pytest
import torch

from hpnb import DataConfig, DataError, load_data

from conftest import SHARED_DATA


# ----------------------------------------------------------------------------- tiny files in real formats
def write_cifar(root, hundred=False, n_train=60, n_test=20, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    label_key = "fine_labels" if hundred else "labels"

    def batch(n):
        labels = [int(i % classes) for i in range(n)]
        return {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), label_key: labels}

    parts = {"train": batch(n_train), "test": batch(n_test)} if hundred else {
        **{f"data_batch_{i}": batch(n_train // 5) for i in range(1, 6)}, "test_batch": batch(n_test)}
    for name, content in parts.items():
        (folder / name).write_bytes(pickle.dumps(content))
    meta_name, meta_key = ("meta", "fine_label_names") if hundred else ("batches.meta", "label_names")
    (folder / meta_name).write_bytes(pickle.dumps({meta_key: [f"c{i}" for i in range(classes)]}))
    return parts


def write_idx(raw, prefix, images, labels):
    raw.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    with gzip.open(raw / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x0803, n, h, w) + images.astype(np.uint8).tobytes())
    with gzip.open(raw / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x0801, n) + labels.astype(np.uint8).tobytes())


def test_cifar10_pickles_load_through_torchvision(tmp_path):
    parts = write_cifar(tmp_path)
    data = load_data(DataConfig(name="cifar10", root=str(tmp_path), verify=False, validation="test"))
    assert data.train.x.shape == (60, 3, 32, 32) and data.train.x.dtype == torch.uint8
    first = parts["data_batch_1"]["data"][0].reshape(3, 32, 32)  # CIFAR rows are channel-major
    assert torch.equal(data.train.x[0], torch.from_numpy(first))
    assert data.val is data.test and len(data.test) == 20 and data.num_classes == 10
    assert torch.allclose(data.mean, torch.tensor([0.4914, 0.4822, 0.4465]))


def test_cifar100_first_n_classes_and_stratified_holdout(tmp_path):
    write_cifar(tmp_path, hundred=True, n_train=400, n_test=100, classes=100)
    cfg = DataConfig(name="cifar100", root=str(tmp_path), verify=False, num_classes=50, val_size=0.25)
    data = load_data(cfg)
    assert data.num_classes == 50
    assert int(data.train.y.max()) == 49 and len(data.test) == 50
    assert len(data.train) == 150 and len(data.val) == 50
    assert torch.bincount(data.val.y, minlength=50).tolist() == [1] * 50  # stratified: one per class
    again = load_data(cfg)
    assert torch.equal(again.val.x, data.val.x)  # the split seed makes it repeatable


def test_cifar_checksums_are_verified_by_default(tmp_path):
    write_cifar(tmp_path)
    with pytest.raises(DataError, match="failed torchvision's MD5 check.*data.verify: false"):
        load_data(DataConfig(name="cifar10", root=str(tmp_path)))


def test_missing_dataset_names_path_and_how_to_obtain(tmp_path):
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="cifar100", root=str(tmp_path / "nowhere")))
    assert "'cifar100' not found at" in str(err.value) and "nowhere/cifar-100-python" in str(err.value)
    assert "cifar-100-python.tar.gz" in str(err.value)
    with pytest.raises(DataError, match="HIGGS.csv.gz from the UCI"):
        load_data(DataConfig(name="higgs", root=str(tmp_path)))
    with pytest.raises(DataError, match="'mnist' not found at .*MNIST/raw"):
        load_data(DataConfig(name="mnist", root=str(tmp_path)))


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_files_load_through_torchvision(tmp_path, name, folder):
    rng = np.random.default_rng(0)
    train_x, test_x = rng.integers(0, 256, (50, 28, 28)), rng.integers(0, 256, (20, 28, 28))
    write_idx(tmp_path / folder / "raw", "train", train_x, np.arange(50) % 10)
    write_idx(tmp_path / folder / "raw", "t10k", test_x, np.arange(20) % 10)
    data = load_data(DataConfig(name=name, root=str(tmp_path), verify=False, validation="test"))
    assert data.train.x.shape == (50, 1, 28, 28)
    assert torch.equal(data.test.x[:, 0], torch.from_numpy(test_x.astype(np.uint8)))
    assert data.train.y.tolist() == (np.arange(50) % 10).tolist()
    with pytest.raises(DataError, match="MD5"):
        load_data(DataConfig(name=name, root=str(tmp_path), validation="test"))


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").exists(), reason="../shared/data (real MNIST test files) absent")
def test_real_mnist_test_split(tmp_path):
    from hpnb.data import _idx_split
    from torchvision.datasets import MNIST

    shutil.copytree(SHARED_DATA / "MNIST", tmp_path / "MNIST")
    x, y = _idx_split(MNIST, tmp_path, train=False, verify=True, download=False)  # real MD5s checked
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert x.float().div(255).mean().item() == pytest.approx(0.1325, abs=1e-3)


def test_higgs_csv_gz(tmp_path):
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.integers(0, 2, 30), rng.normal(size=(30, 28))])
    with gzip.open(tmp_path / "HIGGS.csv.gz", "wt") as f:
        for row in rows:
            f.write(",".join(f"{v:.18e}" for v in row) + "\n")
    data = load_data(DataConfig(name="higgs", root=str(tmp_path), train_size=20, test_size=10, validation="test"))
    assert data.train.x.shape == (20, 28) and data.test.y.tolist() == rows[20:, 0].astype(int).tolist()
    assert torch.allclose(data.train.x.mean(0), torch.zeros(28), atol=1e-5)  # standardised on train
    raw_test = torch.tensor(rows[20:, 1:], dtype=torch.float32)
    mu, sd = torch.tensor(rows[:20, 1:], dtype=torch.float32).mean(0), torch.tensor(rows[:20, 1:], dtype=torch.float32).std(0)
    assert torch.allclose(data.test.x, (raw_test - mu) / sd, atol=1e-5)
    with pytest.raises(DataError, match="holds 30 rows"):
        load_data(DataConfig(name="higgs", root=str(tmp_path), train_size=25, test_size=10))


def test_digits_resized_and_replicated():
    data = load_data(DataConfig(name="digits", image_size=32, channels=3))
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    assert len(data.train) + len(data.val) + len(data.test) == 1797
    assert torch.equal(data.train.x[:, 0], data.train.x[:, 2])
    assert "1,797 real 8×8 images" in data.description


def test_synthetic_is_seeded_and_binary():
    a = load_data(DataConfig(name="synthetic", train_size=500, test_size=200))
    b = load_data(DataConfig(name="synthetic", train_size=500, test_size=200))
    assert torch.equal(a.train.x, b.train.x) and a.num_classes == 2 and a.input_shape == (28,)
    assert 0.3 < a.train.y.float().mean() < 0.7


def test_failed_download_says_how_to_obtain_the_data(tmp_path, monkeypatch):
    from torchvision import datasets

    def offline(self):
        raise OSError("network unreachable")

    monkeypatch.setattr(datasets.CIFAR10, "download", offline)
    with pytest.raises(DataError) as err:
        load_data(DataConfig(name="cifar10", root=str(tmp_path), download=True))
    message = str(err.value)
    assert "'cifar10' could not be downloaded" in message and "network unreachable" in message
    assert "cifar-10-python.tar.gz" in message
