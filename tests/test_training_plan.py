"""The training plan: per-epoch logging of loss terms, learning-rate schedule."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from conaae_scverse import LOSS_KEYS, ConAAEModule
from conaae_scverse._training_plan import ConAAETrainingPlan


def _plan_capturing_logs(monkeypatch) -> tuple[ConAAETrainingPlan, dict[str, float]]:
    module = ConAAEModule(4, 3, hidden_rna=[5], hidden_atac=[5], n_latent=2, n_labels=2)
    plan = ConAAETrainingPlan(module)
    monkeypatch.setattr(ConAAETrainingPlan, "use_sync_dist", False)  # no Trainer attached
    logged: dict[str, float] = {}
    monkeypatch.setattr(plan, "log", lambda key, value, **_: logged.__setitem__(key, float(value)))
    return plan, logged


def test_epoch_log_is_the_cell_weighted_mean_of_the_steps(monkeypatch):
    plan, logged = _plan_capturing_logs(monkeypatch)
    plan._log_terms(
        {LOSS_KEYS.TOTAL: torch.tensor(1.0), LOSS_KEYS.CYCLE: torch.tensor(4.0)}, "train", 30
    )
    plan._log_terms(
        {LOSS_KEYS.TOTAL: torch.tensor(3.0), LOSS_KEYS.CYCLE: torch.tensor(0.0)}, "train", 10
    )
    assert logged == {}  # nothing is logged per step
    plan.on_train_epoch_end()
    assert logged["train_loss"] == pytest.approx((1.0 * 30 + 3.0 * 10) / 40)
    assert logged[f"{LOSS_KEYS.CYCLE}_train"] == pytest.approx(4.0 * 30 / 40)


def test_each_epoch_starts_afresh_and_modes_stay_apart(monkeypatch):
    plan, logged = _plan_capturing_logs(monkeypatch)
    plan._log_terms({LOSS_KEYS.TOTAL: torch.tensor(5.0)}, "train", 8)
    plan._log_terms({LOSS_KEYS.TOTAL: torch.tensor(7.0)}, "validation", 8)
    plan.on_validation_epoch_end()
    assert logged == {"validation_loss": 7.0}
    plan.on_train_epoch_end()
    assert logged["train_loss"] == 5.0
    logged.clear()
    plan._log_terms({LOSS_KEYS.TOTAL: torch.tensor(2.0)}, "train", 8)
    plan.on_train_epoch_end()
    assert logged == {"train_loss": 2.0}


def test_cosine_schedule_decays_both_learning_rates_to_zero(monkeypatch):
    module = ConAAEModule(4, 3, hidden_rna=[5], hidden_atac=[5], n_latent=2)
    plan = ConAAETrainingPlan(module, lr=1e-2, lr_discriminator=4e-2, lr_schedule="cosine")
    fake_trainer = SimpleNamespace(estimated_stepping_batches=8)
    monkeypatch.setattr(ConAAETrainingPlan, "trainer", property(lambda self: fake_trainer))
    optimizers, schedulers = plan.configure_optimizers()
    rates = []
    for _ in range(8):  # the rates each training step runs at, then the step's scheduler step
        rates.append([opt.param_groups[0]["lr"] for opt in optimizers])
        for scheduler in schedulers:
            scheduler.step()
    expected = [0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)]
    assert [ae for ae, _ in rates] == pytest.approx([1e-2 * f for f in expected])
    assert [disc for _, disc in rates] == pytest.approx([4e-2 * f for f in expected])
    assert rates[4][0] == pytest.approx(0.5e-2)  # half-way through training
    assert optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0)  # after the last step


def test_constant_schedule_has_no_scheduler():
    module = ConAAEModule(4, 3, hidden_rna=[5], hidden_atac=[5], n_latent=2)
    plan = ConAAETrainingPlan(module, lr=1e-2, lr_schedule="constant")
    optimizers = plan.configure_optimizers()
    assert isinstance(optimizers, list) and len(optimizers) == 2


@pytest.mark.parametrize(
    ("schedule", "final_factor"), [("constant", 1.0), ("cosine", None), (None, None)]
)
def test_train_applies_the_schedule(paired_mdata, schedule, final_factor):
    # None: the default, which is the cosine schedule
    from conaae_scverse import ConAAE

    ConAAE.setup_mudata(paired_mdata, labels_key="cell_type")
    model = ConAAE(paired_mdata, n_hidden=[8], n_latent=4)
    model.train(
        max_epochs=3,
        batch_size=16,
        lr=1e-2,
        enable_progress_bar=False,
        plan_kwargs={} if schedule is None else {"lr_schedule": schedule},
    )
    last_lr = model.trainer.optimizers[0].param_groups[0]["lr"]
    if final_factor is None:  # decayed to 0 after the last step
        assert last_lr == pytest.approx(0.0, abs=1e-12)
        steps = 3 * model.trainer.num_training_batches  # one scheduler step per training step
        assert model.trainer.lr_scheduler_configs[0].scheduler.last_epoch == steps
    else:
        assert last_lr == pytest.approx(final_factor * 1e-2)


def test_pseudo_labels_train_until_their_last_epoch_then_are_dropped(monkeypatch):
    from conaae_scverse._constants import REGISTRY_KEYS
    from conaae_scverse._training_plan import PseudoLabelRelease

    module = ConAAEModule(4, 3, hidden_rna=[5], hidden_atac=[5], n_latent=2, n_labels=2)
    release = PseudoLabelRelease("atac", torch.tensor([True, False, True, False]), 3)
    plan = ConAAETrainingPlan(module, pseudo_labels=release)
    epoch = {"now": 0}
    monkeypatch.setattr(ConAAETrainingPlan, "current_epoch", property(lambda _: epoch["now"]))
    # Rows 2, 1 and 0 of the modality: 2 and 0 carry pseudo-labels, 1 a label of its own.
    minibatch = {
        REGISTRY_KEYS.LABELS_KEY: torch.tensor([[1.0], [0.0], [0.0]]),
        REGISTRY_KEYS.INDICES_KEY: torch.tensor([[2.0], [1.0], [0.0]]),
    }
    for now, expected in ((0, [1.0, 0.0, 0.0]), (2, [1.0, 0.0, 0.0]), (3, [-1.0, 0.0, -1.0])):
        epoch["now"] = now
        assert plan._labels(minibatch, "atac").reshape(-1).tolist() == expected
        # The other modality's labels are never touched.
        assert plan._labels(minibatch, "rna").reshape(-1).tolist() == [1.0, 0.0, 0.0]
