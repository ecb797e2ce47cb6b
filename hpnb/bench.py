"""``hpnb bench``: training throughput of each study network, in every way hpnb can run it, side by side.

For each network, on random data of the paper profile's input shape and batch size, in one process:

- **eager**: one run, the plain loop (no CUDA graph, no compilation);
- **graphed**: one run, every full-batch step replayed from a CUDA graph (CUDA only);
- **compiled**: one run, the step's forward and loss through ``torch.compile`` (on CUDA; on a CPU only with
  ``--compile``, as compiling takes minutes there);
- **ensemble**: the number of runs the paper profile trains together for that network, in one stacked step
  (graphed on CUDA);
- **reference** (``--reference``): the write-ups' style of loop: a torchvision dataset object serving PIL images,
  a DataLoader with per-image transforms and worker processes, and a ``.item()`` per step.

It prints ms per step, aggregate samples/s, the speed-up over eager and the model-FLOPs utilisation (matmul and
convolution FLOPs of a training step, counted by ``torch.utils.flop_counter``, over the device's *measured*
matmul rate: bf16 on CUDA, fp32 on CPU). On a CPU the wide networks are shrunk to 1/8 width.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F

from .config import RunConfig
from .data import load_data
from .timing import Sizes, stand_in
from .loop import build, fit_members, resolve_device
from .utilisation import matmul_rate, training_flops

# network → (model, input shape, classes, batch size, optimizer, augmented?, members trained together by the
# paper profile with 3 seeds: 4 inits (ch. 1), 5 schedulers (ch. 1), 3 rates (ch. 2), 13 SGD settings (ch. 3),
# 5 inits (ch. 4))
NETWORKS = {
    "vgg19": ({"name": "vgg19", "width": 1.0}, (3, 32, 32), 50, 128, {"name": "sgd", "lr": 0.01, "momentum": 0.9,
              "weight_decay": 5e-4}, True, 12),
    "resnet34": ({"name": "resnet34", "width": 1.0}, (3, 32, 32), 50, 128, {"name": "adam", "lr": 1e-3}, True, 15),
    "mobilenet": ({"name": "mobilenet", "width": 1.0}, (3, 32, 32), 100, 128, {"name": "sgd", "lr": 0.05,
                  "momentum": 0.9}, True, 9),
    "mnist_cnn": ({"name": "mnist_cnn", "double_softmax": True}, (1, 28, 28), 10, 64, {"name": "sgd", "lr": 0.01,
                  "momentum": 0.9}, False, 39),
    "cifar_cnn": ({"name": "cifar_cnn", "dropout_first_epoch_only": True}, (3, 32, 32), 10, 20, {"name": "sgd",
                  "lr": 0.01, "momentum": 0.9}, False, 39),
    "ldlt_mlp": ({"name": "ldlt_mlp", "depth": 16, "width": 64}, (28,), 2, 512, {"name": "adamw", "lr": 2e-3}, False,
                 15),
}
WIDE = {"vgg19", "resnet34", "mobilenet"}
MODES = ("eager", "graphed", "compiled", "ensemble")


@dataclass
class Timing:
    mode: str
    members: int
    ms_per_step: float  # one step of all members
    samples_per_sec: float  # aggregate over members


@dataclass
class Result:
    network: str
    batch_size: int
    flops_per_sample: float  # training (forward + backward) model FLOPs
    peak: float  # the device's measured matmul FLOP/s
    timings: dict[str, Timing] = field(default_factory=dict)

    def speedup(self, mode: str) -> float:
        return self.timings[mode].samples_per_sec / self.timings["eager"].samples_per_sec

    def mfu(self, mode: str) -> float:
        return self.timings[mode].samples_per_sec * self.flops_per_sample / self.peak


def config_for(network: str, device: str, seed: int = 0, **execution) -> RunConfig:
    model, shape, _classes, batch, optimizer, augment, _ = NETWORKS[network]
    if not device.startswith("cuda") and network in WIDE:
        model = {**model, "width": 0.125}
    data = {"name": "digits", "image_size": shape[1], "channels": shape[0], "augment": augment} if len(shape) == 3 \
        else {"name": "synthetic", "n_features": shape[0]}
    return RunConfig.from_dict({"data": {**data, "validation": "none"}, "model": model, "optimizer": optimizer,
                                "epochs": 2, "batch_size": batch, "seed": seed, "device": device,
                                "test_every_epoch": False, **execution})


def _stand_in(network: str, cfg: RunConfig, steps: int, device: torch.device):
    _, shape, classes, *_ = NETWORKS[network]
    return stand_in(cfg, Sizes(shape, classes, steps * cfg.batch_size, 0, 0), steps * cfg.batch_size, 0, device)


def time_mode(network: str, mode: str, device: str, steps: int, repeats: int) -> Optional[Timing]:
    """Median over ``repeats`` of the second epoch (``steps`` full batches) of ``mode``; None if not available."""
    cuda = device.startswith("cuda")
    if mode == "graphed" and not cuda:
        return None
    members = NETWORKS[network][6] if mode == "ensemble" else 1
    execution = {"cuda_graphs": mode in ("graphed", "ensemble"), "compile": mode == "compiled"}
    cfgs = [config_for(network, device, seed=s, **execution) for s in range(members)]
    data = _stand_in(network, cfgs[0], steps, resolve_device(device))
    seconds = []
    for _ in range(repeats):
        runs = fit_members(cfgs, progress=False, data=data)
        seconds.append(float(runs[0].history["seconds"].iloc[-1]))  # epoch 2: warm-up and capture are done
    s = statistics.median(seconds)
    return Timing(mode, members, 1000 * s / steps, members * steps * cfgs[0].batch_size / s)


def reference_samples_per_sec(network: str, device: str, workers: int, steps: int) -> float:
    """One epoch of the write-ups' style of loop on digits of the network's shape; returns samples per second."""
    from PIL import Image
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms
    from torchvision.datasets import VisionDataset

    cfg = config_for(network, device)
    torch_device = resolve_device(device)
    data = load_data(cfg.data, "cpu")
    if not data.is_image:
        raise ValueError(f"{network}: the reference loop is for image networks")
    steps_ = [transforms.RandomCrop(data.input_shape[1], padding=4), transforms.RandomHorizontalFlip()] \
        if cfg.data.augment else []
    steps_ += [transforms.ToTensor(), transforms.Normalize(data.mean.tolist(), data.std.tolist())]

    class Images(VisionDataset):  # a torchvision dataset object serving PIL images, as CIFAR10/MNIST do
        def __init__(self, x, y):
            super().__init__("", transform=transforms.Compose(steps_))
            self.x, self.y = x.permute(0, 2, 3, 1).squeeze(-1).numpy(), y.tolist()

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return self.transform(Image.fromarray(self.x[i])), self.y[i]

    images = Images(data.train.x, data.train.y)
    images = Subset(images, range(min(len(images), steps * cfg.batch_size)))
    loader = DataLoader(images, batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
                        pin_memory=torch_device.type == "cuda")
    model = build(cfg, data, torch_device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    seen, running = 0, 0.0
    start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(torch_device), y.to(torch_device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        running += loss.item()  # the per-batch host sync the write-ups' loops had
        seen += len(y)
    return seen / (time.perf_counter() - start)


def benchmark(networks=None, modes=None, device: str = "auto", steps: Optional[int] = None, repeats: int = 3,
              compile_on_cpu: bool = False, reference: bool = False, workers: int = 2) -> list[Result]:
    device = str(resolve_device(device))
    cuda = device.startswith("cuda")
    steps = steps or (50 if cuda else 4)
    peak = matmul_rate(device)
    print(f"device {device} ({torch.cuda.get_device_name(0) if cuda else 'CPU'}): measured matmul rate "
          f"{peak / 1e12:.2f} TFLOP/s ({'bf16' if cuda else 'fp32'}); {steps} steps per epoch, median of "
          f"{repeats}", flush=True)
    results = []
    for name in networks or NETWORKS:
        cfg = config_for(name, device)
        data = _stand_in(name, cfg, 1, resolve_device(device))
        x = data.train.x[: cfg.batch_size]
        x = x.float().div(255) if x.dtype == torch.uint8 else x
        flops = training_flops(build(cfg, data, resolve_device(device)), x, data.train.y[: cfg.batch_size])
        result = Result(name, cfg.batch_size, flops / cfg.batch_size, peak)
        for mode in modes or MODES:
            if mode == "compiled" and not cuda and not compile_on_cpu:
                continue
            timing = time_mode(name, mode, device, steps, repeats)
            if timing is not None:
                result.timings[mode] = timing
        line = "  ".join(f"{m} {t.ms_per_step:7.2f} ms/step {t.samples_per_sec:9.0f}/s ×{result.speedup(m):.2f} "
                         f"MFU {result.mfu(m):5.1%}" + (f" (K={t.members})" if t.members > 1 else "")
                         for m, t in result.timings.items())
        if reference and len(NETWORKS[name][1]) == 3:
            line += f"  reference {reference_samples_per_sec(name, device, workers, steps):9.0f}/s"
        print(f"{name:10s} batch {cfg.batch_size:4d} ({result.flops_per_sample / 1e6:,.1f} MFLOP/sample)  {line}",
              flush=True)
        results.append(result)
    return results


def _run(args) -> int:
    benchmark(args.network, args.mode, args.device, args.steps, args.repeats, args.compile, args.reference,
              args.workers)
    return 0


def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="training throughput of each network: eager, graphed, compiled, ensemble")
    p.add_argument("--network", nargs="*", choices=list(NETWORKS), default=None)
    p.add_argument("--mode", nargs="*", choices=list(MODES), default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=None, help="steps per timed epoch (default 50 CUDA, 4 CPU)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also time torch.compile on a CPU (slow to compile)")
    p.add_argument("--reference", action="store_true", help="also time the write-ups' DataLoader loop")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference loop")
    p.set_defaults(func=_run)
