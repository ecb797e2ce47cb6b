import pytest

from hpnb.studies.lr_decay_sequences import cifar_accuracy, convergence_epoch, mnist_accuracy


def test_convergence_epoch_finds_the_first_quiet_window():
    acc = [0.50, 0.60, 0.70, 0.705, 0.707, 0.708, 0.709, 0.710]
    # |Δ| = .1 .1 .005 .002 .001 .001 .001; windows of four from i = 0: .207, .108, .009 (not < .009), .005
    assert convergence_epoch(acc) == 3


def test_convergence_epoch_threshold_is_strict_and_never_means_n():
    assert convergence_epoch([0.5, 0.5045, 0.5, 0.5045, 0.5]) == 5  # sum is exactly .018 > .009
    assert convergence_epoch([0.1, 0.3, 0.2, 0.4, 0.3, 0.5]) == 6
    assert convergence_epoch([0.9] * 5) == 0
    assert convergence_epoch([0.9] * 4) == 4  # too short for one window of four differences


def test_accuracy_definitions():
    acc = [i / 100 for i in range(50)]  # epoch k (1-based) has accuracy (k-1)/100
    assert mnist_accuracy(acc) == pytest.approx((0.45 + 0.46 + 0.47 + 0.48) / 4)  # epochs 46–49
    assert cifar_accuracy(acc) == 0.49
    with pytest.raises(ValueError, match="at least 5 epochs"):
        mnist_accuracy([0.1, 0.2])
