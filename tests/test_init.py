import math

import pytest
import torch
import torch.nn as nn

from hpnb.init import initialise

FAN_IN, FAN_OUT = 1000, 600


@pytest.mark.parametrize("name, options, std", [
    ("kaiming_normal", {}, math.sqrt(2 / FAN_IN)),
    ("kaiming_uniform", {}, math.sqrt(2 / FAN_IN)),
    ("xavier_normal", {}, math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("xavier_uniform", {}, math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("scaled_normal", {"scale": 10.0}, 10 / math.sqrt(FAN_IN)),
])
def test_empirical_std_matches_theory(name, options, std):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(FAN_IN, FAN_OUT), nn.ReLU())
    initialise(model, name, options)
    w = model[0].weight  # 600,000 draws: the std's relative standard error is ~0.09 %
    assert w.std().item() == pytest.approx(std, rel=0.005)
    assert w.mean().item() == pytest.approx(0, abs=std * 0.01)
    assert torch.count_nonzero(model[0].bias) == 0


def test_uniform_inits_respect_their_bounds():
    model = initialise(nn.Linear(FAN_IN, FAN_OUT), "kaiming_uniform", {})
    assert model.weight.abs().max() <= math.sqrt(6 / FAN_IN)


def test_conv_fan_in_counts_the_kernel():
    conv = initialise(nn.Sequential(nn.Conv2d(64, 64, 3)), "kaiming_normal", {})[0]
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.02)


def test_default_leaves_torch_init_untouched():
    torch.manual_seed(1)
    a = nn.Linear(10, 10)
    torch.manual_seed(1)
    b = initialise(nn.Linear(10, 10), "default", {})
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
