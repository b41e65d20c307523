"""Training faults: non-finite losses, interrupted training, continuation and determinism."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from conaae_scverse import ConAAE
from conaae_scverse import _module as module_impl
from conaae_scverse._training_plan import NonFiniteLossError

SMALL = {"n_rna": 24, "n_atac": 20, "n_genes": 6, "n_peaks": 5}
NET = {"n_latent": 3, "n_hidden": [8]}
FIT = {"batch_size": 8, "enable_progress_bar": False, "accelerator": "cpu"}
CONSTANT_LR = {"lr_schedule": "constant"}


@pytest.fixture
def make_model(make_mudata):
    """Factory of small labelled models, each on a fresh copy of the same data."""

    def make(**kwargs) -> ConAAE:
        mdata = make_mudata(**SMALL)
        ConAAE.setup_mudata(mdata, labels_key="cell_type")
        return ConAAE(mdata, **{**NET, **kwargs})

    return make


def weights(model: ConAAE) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.module.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


class Recorder(Callback):
    """Copies the weights at the end of every epoch."""

    def __init__(self):
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.states.append(
            {k: v.detach().cpu().clone() for k, v in pl_module.module.state_dict().items()}
        )


class Interrupt(Callback):
    """Raises ``error`` (Ctrl+C by default) at the start of epoch ``epoch``, batch ``batch``."""

    def __init__(self, epoch: int, batch: int = 0, error: type[BaseException] = KeyboardInterrupt):
        self.epoch, self.batch, self.error = epoch, batch, error

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise self.error("stop")


def epochs(model: ConAAE, key: str = "train_loss") -> list[int]:
    return [int(i) for i in model.history[key].index]


# ------------------------------------------------------------------------------- non-finite loss
def test_nan_loss_stops_training_naming_the_term_and_the_remedy(make_model):
    model = make_model()
    model.module.rna_mean[0] = float("nan")  # e.g. corrupted feature statistics
    with pytest.raises(NonFiniteLossError) as info:
        model.train(max_epochs=2, **FIT)
    message = str(info.value)
    assert "The 'reconstruction_rna' loss became nan at epoch 0" in message
    assert "Lower the learning rate (train(lr=...))" in message
    assert "loss_weights" in message
    assert isinstance(info.value, FloatingPointError)  # an ArithmeticError, not wrapped
    assert not model.is_trained and model.history == {}


def test_infinite_loss_mid_training_keeps_the_last_completed_epoch(make_model, monkeypatch):
    model = make_model()
    recorder = Recorder()
    generator_loss = module_impl._losses.lsgan_generator

    class Blow(Callback):
        on = False

        def on_train_epoch_start(self, trainer, pl_module):
            Blow.on = trainer.current_epoch == 2

    def exploding(*args, **kwargs):
        value = generator_loss(*args, **kwargs)
        return value * float("inf") if Blow.on else value

    monkeypatch.setattr(module_impl._losses, "lsgan_generator", exploding)
    with pytest.raises(
        NonFiniteLossError,
        match=r"The 'adversarial' loss became inf at epoch 2. Training stopped; the model keeps "
        r"the weights of the last completed epoch. Lower the learning rate \(train\(lr=\.\.\.\)\)",
    ):
        model.train(max_epochs=4, callbacks=[recorder, Blow()], **FIT)
    assert len(recorder.states) == 2
    assert_same_weights(weights(model), recorder.states[-1])
    assert epochs(model) == [0, 1]
    assert model.is_trained
    assert np.isfinite(model.get_latent_representation()).all()

    # The fault is gone: training continues from there and the history is appended.
    monkeypatch.setattr(module_impl._losses, "lsgan_generator", generator_loss)
    model.train(max_epochs=2, **FIT)
    assert epochs(model) == [0, 1, 2, 3]


def test_other_errors_propagate_unchanged_and_restore_weights(make_model):
    model = make_model()
    before = weights(model)
    with pytest.raises(RuntimeError, match=r"^stop$"):
        model.train(max_epochs=3, callbacks=[Interrupt(0, batch=1, error=RuntimeError)], **FIT)
    assert_same_weights(weights(model), before)
    assert not model.is_trained and model.history == {}


# ------------------------------------------------------------------------------- Ctrl+C
def test_keyboard_interrupt_keeps_last_completed_epoch_and_reraises(make_model):
    model = make_model()
    recorder = Recorder()
    callbacks = [recorder, Interrupt(3, batch=1)]
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(
        KeyboardInterrupt,
        match=r"Training interrupted; the model keeps the weights of its last completed epoch "
        r"\(3 of 5 in this call\). Call train\(\) again to continue",
    ):
        # A constant rate: under the default cosine schedule the rates of epoch 3 depend on
        # max_epochs, so the run below (3 of 3 epochs) would differ by design.
        model.train(max_epochs=5, callbacks=callbacks, plan_kwargs=CONSTANT_LR, **FIT)
    # Lightning sets SIGINT to SIG_IGN on Ctrl+C; train() puts the user's handler back.
    assert signal.getsignal(signal.SIGINT) is handler
    assert len(callbacks) == 2  # the user's list is not modified
    # Weights of the last completed epoch (not of the half-done fourth one), and its history.
    assert len(recorder.states) == 3
    assert_same_weights(weights(model), recorder.states[-1])
    assert epochs(model) == [0, 1, 2]
    assert epochs(model, "validation_loss") == [0, 1, 2]
    assert model.is_trained

    # The same as a run that stopped after 3 epochs by itself.
    reference = make_model()
    reference.train(max_epochs=3, plan_kwargs=CONSTANT_LR, **FIT)
    assert_same_weights(weights(model), weights(reference))
    np.testing.assert_array_equal(
        model.get_latent_representation(), reference.get_latent_representation()
    )

    # train() continues from there; the history is appended.
    model.train(max_epochs=2, **FIT)
    assert epochs(model) == [0, 1, 2, 3, 4]
    assert model.n_train_calls_ == 2


def test_keyboard_interrupt_in_the_first_epoch_leaves_the_model_as_before(make_model):
    model = make_model()
    before = weights(model)
    with pytest.raises(KeyboardInterrupt, match=r"\(0 of 2 in this call\)"):
        model.train(max_epochs=2, callbacks=[Interrupt(0, batch=1)], **FIT)
    assert_same_weights(weights(model), before)
    assert not model.is_trained and model.history == {}
    model.train(max_epochs=1, **FIT)
    assert model.is_trained and epochs(model) == [0]


# ------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_embeddings(make_model):
    latents = []
    for _ in range(2):
        model = make_model(seed=7)
        model.train(max_epochs=2, **FIT)
        latents.append(
            np.concatenate([model.get_latent_representation(modality=m) for m in ("rna", "atac")])
        )
    np.testing.assert_array_equal(latents[0], latents[1])

    other = make_model(seed=8)
    other.train(max_epochs=2, **FIT)
    assert not np.array_equal(other.get_latent_representation(), latents[0][:24])
