"""The training plan's per-epoch logging of loss terms."""

from __future__ import annotations

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
