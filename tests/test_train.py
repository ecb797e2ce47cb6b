import math

import pytest

from hpnb import RunConfig, decay_sequence, train

from conftest import tiny_dict

TIMING = ["seconds", "samples_per_sec"]


def history(run):
    return run.history.drop(columns=TIMING)


def test_history_columns_and_summary():
    run = train(tiny_dict(), store=None)
    assert list(run.history["epoch"]) == [1, 2, 3]
    for col in ("lr", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "seconds",
                "samples_per_sec"):
        assert run.history[col].notna().all(), col
    assert run.summary["status"] == "finished" and run.summary["epochs_run"] == 3
    assert run.summary["final_test_acc"] == run.history["test_acc"].iloc[-1]
    assert run.history["val_acc"].iloc[-1] > 0.5  # real digits are learnable in 3 epochs


def test_cpu_runs_are_bit_for_bit_repeatable():
    cfg = tiny_dict(data__augment=True, data__crop_padding=2)
    a, b = train(cfg, store=None), train(cfg, store=None)
    assert history(a).equals(history(b))
    assert not history(a).equals(history(train(tiny_dict(data__augment=True, seed=1), store=None)))


def test_non_finite_loss_marks_the_run_diverged_and_keeps_history():
    run = train(tiny_dict(optimizer__lr=1e9, epochs=5), store=None)
    assert run.summary["status"] == "diverged"
    assert run.summary["diverged_at"] == len(run.history) <= 5
    assert not math.isfinite(run.history["train_loss"].iloc[-1])


def test_grad_norm_probe_every_step():
    run = train(tiny_dict(probes__grad_norm="conv.weight", epochs=2, batch_size=100), store=None)
    steps_per_epoch = math.ceil(len_train() / 100)
    assert len(run.grad_norms) == 2 * steps_per_epoch
    assert run.grad_norms["step"].tolist() == list(range(1, 2 * steps_per_epoch + 1))
    assert (run.grad_norms["grad_norm"] > 0).all()
    per_epoch = run.grad_norms.groupby("epoch")["grad_norm"].mean()
    assert per_epoch.tolist() == pytest.approx(run.history["grad_norm_mean"].tolist())


def len_train():
    from hpnb import load_data

    return len(load_data(RunConfig.from_dict(tiny_dict()).data).train)


def test_unknown_probe_parameter_fails_before_training():
    with pytest.raises(ValueError, match="no parameter 'conv.wieght'"):
        train(tiny_dict(probes__grad_norm="conv.wieght"), store=None)


def test_activation_variance_probe_at_init_and_after_training():
    run = train(tiny_dict(probes__activation_variance=True, epochs=3), store=None)
    acts = run.activations
    assert sorted(acts["epoch"].unique()) == [0, 3]
    assert acts[acts.epoch == 0]["layer"].tolist() == ["input", "conv", "fc1", "fc2"]
    assert (acts["std"] ** 2).tolist() == pytest.approx(acts["variance"].tolist(), rel=1e-5)


def test_probing_does_not_change_the_run():
    plain = train(tiny_dict(model__name="vgg19", model__batch_norm=True, model__width=0.0625,
                            data__image_size=32, epochs=2), store=None)
    probed = train(tiny_dict(model__name="vgg19", model__batch_norm=True, model__width=0.0625,
                             data__image_size=32, epochs=2, probes__activation_variance=True), store=None)
    assert history(plain).equals(history(probed))


def test_roc_auc_for_binary_tasks():
    cfg = {"data": {"name": "synthetic", "train_size": 2000, "test_size": 500}, "model": {"name": "mlp"},
           "optimizer": {"name": "adamw", "lr": 3e-3}, "epochs": 3, "device": "cpu"}
    run = train(cfg, store=None)
    assert 0.75 < run.history["test_auc"].iloc[-1] <= 1.0


def test_strategy_sets_the_rate_between_epochs():
    run = train(tiny_dict(epochs=4, optimizer__momentum=0.9, strategy={"name": "epoch", "sequence": "seq2"}),
                store=None)
    assert run.history["lr"].tolist() == pytest.approx([0.05] + decay_sequence("seq2", 0.05, 3))


def test_per_batch_cyclic_schedule_is_stepped_every_batch():
    cfg = tiny_dict(epochs=2, batch_size=130, optimizer={"name": "adam", "lr": 1e-3},
                    schedule={"name": "cyclic", "base_lr": 1e-4, "max_lr": 1e-3, "step_size_up_epochs": 1.0})
    run = train(cfg, store=None)
    assert run.history["lr"].tolist() == pytest.approx([1e-4, 1e-3])  # a full half-cycle per epoch
