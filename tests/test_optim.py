"""The stacked optimizers against torch.optim, member by member."""
import pytest
import torch

from hpnb.optim import build_optimizer

MEMBERS = {
    "sgd": [{"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": False},
            {"lr": 0.02, "momentum": 0.0, "weight_decay": 0.0, "nesterov": False},
            {"lr": 0.05, "momentum": 0.5, "weight_decay": 1e-3, "nesterov": True}],
    "adam": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
             {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 1e-2}],
    "adamw": [{"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01},
              {"lr": 1e-2, "betas": (0.85, 0.95), "eps": 1e-7, "weight_decay": 0.1}],
}
TORCH = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def grads(step, shape):
    g = torch.Generator().manual_seed(100 + step)
    return torch.randn(shape, generator=g, dtype=torch.float64).float()


@pytest.mark.parametrize("name", list(MEMBERS))
def test_every_member_steps_exactly_as_torch_optim(name):
    options = MEMBERS[name]
    k = len(options)
    start = {"w": torch.randn(k, 5, 3), "b": torch.randn(k, 3)}
    stacked = {n: t.clone().requires_grad_() for n, t in start.items()}
    opt = build_optimizer(name, stacked, options)
    alone = [{n: t[i].clone().requires_grad_() for n, t in start.items()} for i in range(k)]
    torch_opts = [TORCH[name](list(p.values()), **o) for p, o in zip(alone, options)]
    for step in range(6):
        for n, p in stacked.items():
            p.grad = grads(step, p.shape)
        opt.step(torch.tensor([o["lr"] for o in options], dtype=torch.float64), torch.ones(k, dtype=torch.float64))
        for i, (params, torch_opt) in enumerate(zip(alone, torch_opts)):
            for n, p in params.items():
                p.grad = grads(step, stacked[n].shape)[i]
            torch_opt.step()
    for i in range(k):
        for n in start:
            torch.testing.assert_close(stacked[n][i], alone[i][n], rtol=1e-6, atol=1e-7)


def test_a_frozen_member_does_not_move_and_the_others_do():
    start = torch.randn(2, 4)
    p = {"w": start.clone().requires_grad_()}
    opt = build_optimizer("adam", p, MEMBERS["adam"])
    p["w"].grad = torch.ones(2, 4)
    opt.step(torch.tensor([1e-3, 3e-3], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert torch.equal(p["w"][0], start[0]) and not torch.equal(p["w"][1], start[1])
    assert opt.steps.tolist() == [0.0, 1.0]


def test_member_state_round_trips_into_another_slot():
    p = {"w": torch.randn(3, 4, requires_grad=True)}
    opt = build_optimizer("sgd", p, MEMBERS["sgd"])
    p["w"].grad = torch.randn(3, 4)
    opt.step(torch.full((3,), 0.1, dtype=torch.float64), torch.ones(3, dtype=torch.float64))
    saved = opt.member_state(0)
    other = build_optimizer("sgd", {"w": torch.zeros(2, 4, requires_grad=True)}, MEMBERS["sgd"][:1] * 2)
    other.load_member_state(1, saved)
    assert torch.equal(other.state["w"]["momentum_buffer"][1], opt.state["w"]["momentum_buffer"][0])
    assert other.steps.tolist() == [0.0, 1.0]
