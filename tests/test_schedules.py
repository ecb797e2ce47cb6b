import math

import pytest
import torch

from hpnb import RunConfig, decay_sequence
from hpnb.schedules import build_schedule
from hpnb.strategies import build_strategy


def lrs(name, options, epochs, steps_per_epoch=1, lr=1.0, per_batch=False):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    cfg = RunConfig.from_dict({"schedule": {"name": name, **options}, "epochs": epochs})
    sched = build_schedule(opt, name, cfg.schedule.options, epochs, steps_per_epoch)
    out = []
    for _ in range(epochs * (steps_per_epoch if per_batch else 1)):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_constant_is_truly_constant():
    assert lrs("constant", {}, 10, lr=0.1) == [0.1] * 10


def test_exponential():
    assert lrs("exponential", {"gamma": 0.95}, 5) == pytest.approx([0.95**e for e in range(5)])


def test_multistep():
    got = lrs("multistep", {"milestones": [3, 6], "gamma": 0.1}, 8)
    assert got == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01, 0.01])


def test_cosine_reaches_zero_over_the_run():
    got = lrs("cosine", {}, 11)
    assert got == pytest.approx([0.5 * (1 + math.cos(math.pi * e / 11)) for e in range(11)], abs=1e-12)


def test_cosine_warm_restarts_restart_at_10_30_70():
    got = lrs("cosine_warm_restarts", {"T_0": 10, "T_mult": 2}, 75)
    restarts = [e for e in range(1, 75) if got[e] > got[e - 1]]
    assert restarts == [10, 30, 70]
    assert got[15] == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 20)))


def test_cyclic_triangle_per_batch_with_half_cycle_in_epochs():
    got = lrs("cyclic", {"base_lr": 1e-4, "max_lr": 1e-3, "step_size_up_epochs": 2}, 4, steps_per_epoch=5,
              lr=1e-3, per_batch=True)
    up = [1e-4 + (1e-3 - 1e-4) * i / 10 for i in range(10)]
    assert got == pytest.approx(up + [1e-3 - (1e-3 - 1e-4) * i / 10 for i in range(10)])


@pytest.mark.parametrize("name, formula", [
    ("seq1", lambda j: 1 / (j + 1)),
    ("seq2", lambda j: 1 / math.sqrt(j + 1)),
    ("seq3", lambda j: 0.9**j),
    ("seq4", lambda j: (1 - ((j - 1) % 10) / 10) / ((j - 1) // 10 + 1)),
    ("seq4_printed", lambda j: (1 - ((j - 1) % 10) / 10) / (j // 10 + 1)),
])
def test_decay_sequences_match_their_formulas(name, formula):
    assert decay_sequence(name, 0.01, 35) == pytest.approx([0.01 * formula(j) for j in range(1, 36)])


def test_seq4_values_and_where_the_printed_formula_differs():
    seq4 = decay_sequence("seq4", 1.0, 21)
    assert seq4[:11] == pytest.approx([1, .9, .8, .7, .6, .5, .4, .3, .2, .1, .5])
    assert seq4[11] == pytest.approx(0.45) and seq4[20] == pytest.approx(1 / 3)
    printed = decay_sequence("seq4_printed", 1.0, 30)
    differs = [j for j in range(1, 31) if abs(printed[j - 1] - decay_sequence("seq4", 1.0, 30)[j - 1]) > 1e-12]
    assert differs == [10, 20, 30]


def drive(name, losses, r0=1.0, **options):
    cfg = RunConfig.from_dict({"strategy": {"name": name, **options}})
    strategy = build_strategy(name, cfg.strategy.options, r0)
    return [strategy.after_epoch(v) for v in losses]


def test_by_epoch_updates_after_every_epoch():
    assert drive("epoch", [5, 4, 3], sequence="seq1") == pytest.approx([1 / 2, 1 / 3, 1 / 4])


def test_by_cutoff_rule_on_a_scripted_loss_sequence():
    # c1 = 2.0 * 0.01 = 0.02; updates when |Δ| < c, then c shrinks ×0.2
    losses = [2.0, 1.5, 1.49, 1.485, 1.4849, 1.48489]
    got = drive("cutoff", losses, sequence="seq3")
    # |Δ|: .5 (no), .01 (<.02 fire, c=.004), .005 (no), .0001 (<.004 fire, c=.0008), .00001 (fire)
    assert got[0] is None and got[1] is None and got[3] is None
    assert got[2] == pytest.approx(0.9) and got[4] == pytest.approx(0.81) and got[5] == pytest.approx(0.729)


def test_cutoff_fraction_option_changes_the_first_cutoff():
    assert drive("cutoff", [2.0, 1.9], cutoff_fraction=0.1)[1] == pytest.approx(0.5)  # |Δ|=.1 < .2
    assert drive("cutoff", [2.0, 1.9], cutoff_fraction=0.01)[1] is None


def test_by_oscillation_and_the_zero_padding_quirk():
    losses = [2.0, 1.8, 1.9, 1.7, 1.75]
    plain = drive("oscillation", losses, sequence="seq1")
    assert [v is not None for v in plain] == [False, False, True, False, True]
    assert plain[2] == pytest.approx(0.5) and plain[4] == pytest.approx(1 / 3)
    quirk = drive("oscillation", losses, sequence="seq1", zero_padded_history=True)
    assert [v is not None for v in quirk] == [True, False, True, False, True]
    assert quirk[0] == pytest.approx(0.5) and quirk[4] == pytest.approx(0.25)
