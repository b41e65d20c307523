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
    optimizers = plan.configure_optimizers()
    fake_trainer = SimpleNamespace(num_training_batches=4, max_epochs=2, current_epoch=0)
    monkeypatch.setattr(ConAAETrainingPlan, "trainer", property(lambda self: fake_trainer))
    monkeypatch.setattr(
        ConAAETrainingPlan, "current_epoch", property(lambda self: fake_trainer.current_epoch)
    )
    rates = []
    for epoch in range(2):
        fake_trainer.current_epoch = epoch
        for batch_idx in range(4):
            plan._set_learning_rates(optimizers, batch_idx)
            rates.append([opt.param_groups[0]["lr"] for opt in optimizers])
    expected = [0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)]
    assert [ae for ae, _ in rates] == pytest.approx([1e-2 * f for f in expected])
    assert [disc for _, disc in rates] == pytest.approx([4e-2 * f for f in expected])
    assert rates[4][0] == pytest.approx(0.5e-2)  # half-way through training


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
    if final_factor is None:  # the last step's rate: close to 0, not 0
        assert 0 < last_lr < 0.1e-2
    else:
        assert last_lr == pytest.approx(final_factor * 1e-2)
