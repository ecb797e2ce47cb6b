"""``hpnb bench``: training throughput of hpnb's loop against a loop built the way the write-ups built theirs.

The reference: a torchvision dataset object serving PIL images, a DataLoader with per-image transforms
(random crop, flip, to-tensor, normalise) and worker processes, and a plain fp32 step that reads the loss
back with ``.item()`` every batch. hpnb: the whole split on the device, batched augmentation, no per-step
host sync. Same model, same data, same batch size, in one process; the two alternate so drift hits both.
On CPU the data is scikit-learn's digits at each network's input shape and the wide networks are shrunk.

Beside the ratio it reports, for hpnb's loop, the model-FLOPs utilisation (training FLOPs per sample ×
samples/s over the device's measured matmul rate) and the share of the epoch spent producing batches.
``--concurrent N`` measures the chapter-3 networks trained N at a time in worker processes against one after
another (aggregate samples/s, worker start-up included).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .config import RunConfig
from .data import load_data
from .sweep import sweep
from .train import build, fit, resolve_device, training_batches
from .utilisation import batch_seconds, matmul_rate, training_flops

# network → (model options, input shape (channels, side), batch size of the paper profile, augmented?)
NETWORKS = {
    "vgg19": ({"name": "vgg19", "width": 0.125}, (3, 32), 128, True),
    "resnet34": ({"name": "resnet34", "width": 0.125}, (3, 32), 128, True),
    "mobilenet": ({"name": "mobilenet", "width": 0.125}, (3, 32), 128, True),
    "mnist_cnn": ({"name": "mnist_cnn"}, (1, 28), 64, False),
    "cifar_cnn": ({"name": "cifar_cnn"}, (3, 32), 20, False),
}
FULL_WIDTH = {"vgg19", "resnet34", "mobilenet"}
SMALL = ("mnist_cnn", "cifar_cnn")  # chapter 3's networks: the ones trained several at a time


@dataclass
class Result:
    network: str
    batch_size: int
    reference: float  # samples per second, median over repeats
    hpnb: float
    flops_per_sample: float  # training (forward + backward) model FLOPs
    peak: float  # the device's measured matmul FLOP/s
    data_share: float  # of hpnb's epoch time, the part spent producing batches

    @property
    def ratio(self) -> float:
        return self.hpnb / self.reference

    @property
    def mfu(self) -> float:
        return self.hpnb * self.flops_per_sample / self.peak


def config_for(network: str, device: str) -> RunConfig:
    model, (channels, side), batch, augment = NETWORKS[network]
    if device.startswith("cuda") and network in FULL_WIDTH:
        model = {**model, "width": 1.0}
    return RunConfig.from_dict({
        "data": {"name": "digits", "image_size": side, "channels": channels, "validation": "none",
                 "augment": augment},
        "model": model, "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
        "epochs": 1, "batch_size": batch, "device": device, "test_every_epoch": False})


def reference_epoch(cfg: RunConfig, workers: int) -> float:
    """One epoch of the write-ups' style of loop; returns samples per second."""
    from PIL import Image
    from torch.utils.data import DataLoader
    from torchvision import transforms
    from torchvision.datasets import VisionDataset

    device = resolve_device(cfg.device)
    data = load_data(cfg.data, "cpu")
    steps = [transforms.RandomCrop(data.input_shape[1], padding=cfg.data.crop_padding),
             transforms.RandomHorizontalFlip()] if cfg.data.augment else []
    steps += [transforms.ToTensor(), transforms.Normalize(data.mean.tolist(), data.std.tolist())]

    class Images(VisionDataset):  # a torchvision dataset object serving PIL images, as CIFAR10/MNIST do
        def __init__(self, x, y):
            super().__init__("", transform=transforms.Compose(steps))
            self.x, self.y = x.permute(0, 2, 3, 1).squeeze(-1).numpy(), y.tolist()

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return self.transform(Image.fromarray(self.x[i])), self.y[i]

    loader = DataLoader(Images(data.train.x, data.train.y), batch_size=cfg.batch_size, shuffle=True,
                        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=False)
    model = build(cfg, data, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    seen, running = 0, 0.0
    start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        running += loss.item()  # the per-batch host sync the write-ups' loops had
        seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def hpnb_epoch(cfg: RunConfig) -> float:
    run = fit(cfg, progress=False)
    return float(run.history["samples_per_sec"].iloc[-1])


def step_profile(cfg: RunConfig) -> tuple[float, float, int]:
    """(training FLOPs per sample, seconds to produce one epoch's batches, samples per epoch) for ``cfg``."""
    device = resolve_device(cfg.device)
    data = load_data(cfg.data, device)
    generator = torch.Generator(device=device)
    generator.manual_seed(cfg.seed)
    batches = training_batches(cfg, data, generator)
    x, y = next(iter(batches))
    flops = training_flops(build(cfg, data, device), x, y) / len(y)
    batch_seconds(batches, device)  # warm-up
    return flops, statistics.median(batch_seconds(batches, device) for _ in range(3)), len(data.train)


def benchmark(networks=None, repeats: int = 3, device: str = "auto", workers: int = 2,
              peak: Optional[float] = None) -> list[Result]:
    device = str(resolve_device(device))
    peak = peak or matmul_rate(device)
    print(f"device {device}: measured matmul rate {peak / 1e12:.2f} TFLOP/s "
          f"({'bf16' if device.startswith('cuda') else 'fp32'})", flush=True)
    results = []
    for name in networks or NETWORKS:
        cfg = config_for(name, device)
        hpnb_epoch(cfg), reference_epoch(cfg, workers)  # warm-up: caches, allocator, worker start-up paths
        ref, ours = [], []
        for _ in range(repeats):  # alternate, so slow drift of the machine hits both loops alike
            ref.append(reference_epoch(cfg, workers))
            ours.append(hpnb_epoch(cfg))
        flops, data_seconds, epoch_samples = step_profile(cfg)
        hpnb = statistics.median(ours)
        results.append(Result(name, cfg.batch_size, statistics.median(ref), hpnb, flops, peak,
                              data_seconds / (epoch_samples / hpnb)))
        r = results[-1]
        print(f"{name:10s} batch {r.batch_size:4d}  reference {r.reference:9.0f} samples/s  "
              f"hpnb {r.hpnb:9.0f} samples/s  ratio {r.ratio:5.2f}×  MFU {r.mfu:6.1%}  "
              f"data {r.data_share:5.1%} of step time  ({r.flops_per_sample / 1e6:,.1f} MFLOP/sample)", flush=True)
    return results


@dataclass
class Concurrency:
    network: str
    runs: int
    jobs: int
    one_after_another: float  # aggregate samples per second
    at_once: float

    @property
    def gain(self) -> float:
        return self.at_once / self.one_after_another


def concurrency(jobs: int, device: str = "auto", runs: Optional[int] = None, epochs: int = 10,
                networks=SMALL) -> list[Concurrency]:
    """Aggregate throughput of ``runs`` small runs (seeds 0…) trained in this process one after another,
    against the same runs ``jobs`` at a time in worker processes. Wall time includes the workers' start-up."""
    device = str(resolve_device(device))
    runs = runs or 2 * jobs
    results = []
    for name in networks:
        cfg = config_for(name, device).replace(epochs=epochs, test_every_epoch=False)
        samples = runs * epochs * len(load_data(cfg.data, "cpu").train)
        walls = {}
        for n in (1, jobs):
            start = time.perf_counter()
            frame = sweep(cfg, None, seeds=range(runs), store=None, progress=False, jobs=n)
            walls[n] = time.perf_counter() - start
            if frame.attrs["failed"]:
                raise RuntimeError(f"{name}: {frame.attrs['failed']} run(s) failed: {frame.error.dropna().iloc[0]}")
        results.append(Concurrency(name, runs, jobs, samples / walls[1], samples / walls[jobs]))
        r = results[-1]
        print(f"{name:10s} {runs} runs × {epochs} epochs  one after another {r.one_after_another:9.0f} samples/s  "
              f"{jobs} at once {r.at_once:9.0f} samples/s  gain {r.gain:5.2f}×", flush=True)
    return results


def _run(args) -> int:
    if args.concurrent:
        concurrency(args.concurrent, args.device, epochs=args.epochs)
    else:
        benchmark(args.network, args.repeats, args.device, args.workers)
    return 0


def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="training throughput: hpnb's loop vs the write-ups' DataLoader loop")
    p.add_argument("--network", nargs="*", choices=list(NETWORKS), default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference loop")
    p.add_argument("--concurrent", type=int, default=0, metavar="N",
                   help="instead: chapter-3 networks trained N at a time vs one after another")
    p.add_argument("--epochs", type=int, default=10, help="epochs per run for --concurrent")
    p.set_defaults(func=_run)
