import gzip
import hashlib
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from hpnb import DataConfig, DataError, load_data

from conftest import SHARED_DATA, fault_case


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
    with pytest.raises(DataError) as err:  # verified: random images are not the published data
        load_data(DataConfig(name=name, root=str(tmp_path), validation="test"))
    assert f"{folder}/raw/train-images-idx3-ubyte.gz: its content does not match the published" in str(err.value)
    assert "data.verify: false" in str(err.value) and "download" not in str(err.value)


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


# ----------------------------------------------------------------------------- IDX files: content, not packaging
from hpnb.data import IDX_SHA256, _idx_split, read_idx  # noqa: E402
from torchvision.datasets import MNIST, FashionMNIST  # noqa: E402

IDX_FAULTS = "dataset files (IDX)"


def _raw(tmp_path, n=20):
    rng = np.random.default_rng(1)
    write_idx(tmp_path / "MNIST" / "raw", "t10k", rng.integers(0, 256, (n, 28, 28)), np.arange(n) % 10)
    return tmp_path / "MNIST" / "raw"


def _unpack(gz: Path) -> Path:
    plain = gz.with_suffix("")
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    return plain


@pytest.mark.parametrize("fault, message", [
    ("truncated .gz", "t10k-images-idx3-ubyte.gz: not a complete gzip file (Compressed file ended before the "
                      "end-of-stream marker was reached); the copy is damaged or truncated"),
    ("truncated unpacked", "t10k-images-idx3-ubyte: truncated: its header announces 20 x 28 x 28 bytes of data "
                           "(15,696 bytes with the header), it holds 15,000"),
    ("padded unpacked", "t10k-images-idx3-ubyte: longer than its header says: its header announces 20 x 28 x 28 "
                        "bytes of data (15,696 bytes with the header), it holds 15,700"),
    ("wrong magic", "t10k-images-idx3-ubyte: not an IDX images file (expected the header 0x00000803 and 3 "
                    "dimension(s)); the file is damaged or is not MNIST-format data"),
    ("labels for images", "t10k-images-idx3-ubyte.gz: not an IDX images file (expected the header 0x00000803 and 3 "
                          "dimension(s)); the file is damaged or is not MNIST-format data"),
    ("fewer labels", "t10k images and labels differ in number (20 and 19)"),
    ("labels missing", "dataset 'mnist' not found at {raw} (no t10k-labels-idx1-ubyte or "
                       "t10k-labels-idx1-ubyte.gz): put the four IDX files"),
])
def test_damaged_idx_files_are_rejected_naming_the_file(tmp_path, fault, message):
    """Checked with or without verification: a damaged copy never reaches training."""
    with fault_case(IDX_FAULTS):
        raw = _raw(tmp_path)
        images, labels = raw / "t10k-images-idx3-ubyte.gz", raw / "t10k-labels-idx1-ubyte.gz"
        if fault == "truncated .gz":
            images.write_bytes(images.read_bytes()[:-40])
        elif fault in ("truncated unpacked", "padded unpacked", "wrong magic"):
            plain = _unpack(images)
            data = plain.read_bytes()
            plain.write_bytes({"truncated unpacked": data[:15_000], "padded unpacked": data + b"\0\0\0\0",
                               "wrong magic": b"\0\0\x08\x01" + data[4:]}[fault])
        elif fault == "labels for images":
            images.write_bytes(labels.read_bytes())
        elif fault == "fewer labels":
            labels.write_bytes(gzip.compress(struct.pack(">II", 0x0801, 19) + bytes(19)))
        elif fault == "labels missing":
            labels.unlink()
        with pytest.raises(DataError) as err:
            _idx_split(MNIST, tmp_path, train=False, verify=False, download=False)
        assert message.replace("{raw}", str(raw)) in str(err.value)
        assert str(raw) in str(err.value)


def test_an_unpacked_copy_is_read_before_the_gz_and_verified(tmp_path):
    raw = _raw(tmp_path)
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03")  # a stale, broken extraction beside a good .gz
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: not an IDX images file"):
        _idx_split(MNIST, tmp_path, train=False, verify=False, download=False)


def test_read_idx_returns_the_raw_bytes_and_the_array(tmp_path):
    raw = _raw(tmp_path, n=3)
    data, labels = read_idx(raw / "t10k-labels-idx1-ubyte.gz", "labels")
    assert data == struct.pack(">II", 0x0801, 3) + bytes([0, 1, 2]) and labels.tolist() == [0, 1, 2]


def _real_mnist(tmp_path) -> Path:
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(SHARED_DATA / "MNIST" / "raw", raw)
    return raw


needs_mnist = pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").exists(),
                                 reason="../shared/data (real MNIST test files) absent")


@needs_mnist
def test_known_digests_of_the_real_mnist_test_files():
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        data = gzip.decompress((SHARED_DATA / "MNIST" / "raw" / f"{stem}.gz").read_bytes())
        assert hashlib.sha256(data).hexdigest() == IDX_SHA256["mnist"][stem]


@needs_mnist
@pytest.mark.parametrize("copy", ["recompressed", "unpacked"])
def test_a_faithful_copy_of_real_mnist_passes_however_packed(tmp_path, copy):
    """The issue's Debian case on the data we have: recompressing changes the .gz bytes (torchvision's MD5 no
    longer matches), the content does not; an unpacked copy passes too."""
    with fault_case("faithful data copies accepted"):
        raw = _real_mnist(tmp_path)
        for gz in raw.glob("*.gz"):
            content = gzip.decompress(gz.read_bytes())
            if copy == "unpacked":
                gz.unlink()
                gz.with_suffix("").write_bytes(content)
            else:
                torchvision_md5 = dict((Path(u).name, m) for u, m in MNIST.resources)[gz.name]
                gz.write_bytes(gzip.compress(content, compresslevel=1, mtime=0))
                assert hashlib.md5(gz.read_bytes()).hexdigest() != torchvision_md5
        x, y = _idx_split(MNIST, tmp_path, train=False, verify=True, download=False)
        assert x.shape == (10000, 1, 28, 28) and torch.bincount(y).tolist()[:2] == [980, 1135]


@needs_mnist
@pytest.mark.parametrize("packed", [True, False])
def test_one_altered_byte_of_real_mnist_is_rejected(tmp_path, packed):
    with fault_case(IDX_FAULTS):
        raw = _real_mnist(tmp_path)
        gz = raw / "t10k-images-idx3-ubyte.gz"
        content = bytearray(gzip.decompress(gz.read_bytes()))
        content[5_000_000] ^= 0x01  # one pixel of one image, the header and the size intact
        target = gz if packed else gz.with_suffix("")
        target.write_bytes(gzip.compress(bytes(content)) if packed else bytes(content))
        if not packed:
            gz.unlink()
        with pytest.raises(DataError) as err:
            _idx_split(MNIST, tmp_path, train=False, verify=True, download=False)
        message = str(err.value)
        assert message.startswith(f"{target}: its content does not match the published MNIST file "
                                  f"t10k-images-idx3-ubyte (SHA-256 of the unpacked data ")
        assert "the copy is damaged or altered" in message and "data.verify: false" in message
        assert "re-download" not in message


DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed "
                    "(apt-get install dataset-fashion-mnist)")
def test_debian_fashion_mnist_passes_the_data_check(tmp_path):
    """The issue's case itself: Debian recompressed all four files (none matches torchvision's .gz MD5s); their
    content is the published data, so they pass, read in place (the package's folder is not written to)."""
    with fault_case("faithful data copies accepted"):
        md5 = {Path(u).name: m for u, m in FashionMNIST.resources}
        assert all(hashlib.md5((DEBIAN_FASHION / name).read_bytes()).hexdigest() != m for name, m in md5.items())
        (tmp_path / "FashionMNIST").mkdir()
        (tmp_path / "FashionMNIST" / "raw").symlink_to(DEBIAN_FASHION)
        data = load_data(DataConfig(name="fashion_mnist", root=str(tmp_path), validation="test"))
        assert len(data.train) == 60_000 and len(data.test) == 10_000
        assert torch.bincount(data.train.y).tolist() == [6000] * 10
        assert sorted(p.name for p in DEBIAN_FASHION.iterdir()) == sorted(md5)  # nothing extracted beside them
