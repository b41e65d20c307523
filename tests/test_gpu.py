"""Training and inference on a CUDA device (deselected by default; run with ``-m gpu``).

The same code path as on the CPU (``accelerator="auto"``): these tests check that a GPU is
really used, and that what it learns is usable on the CPU and survives save/load.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import conaae_scverse as ca

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_auto_accelerator_trains_on_the_gpu(paired_mdata):
    ca.ConAAE.setup_mudata(paired_mdata, labels_key="cell_type")
    model = ca.ConAAE(paired_mdata)
    model.train(max_epochs=3, accelerator="auto", enable_progress_bar=False)
    assert model.device.type == "cuda"
    assert all(p.is_cuda for p in model.module.parameters())
    assert np.isfinite(model.history["train_loss"].to_numpy()).all()
    model.write_results()
    assert paired_mdata["rna"].obsm["X_conaae"].shape == (paired_mdata["rna"].n_obs, 50)


def test_gpu_latents_agree_with_the_cpu_and_after_load(paired_mdata, tmp_path):
    ca.ConAAE.setup_mudata(paired_mdata, labels_key="cell_type")
    model = ca.ConAAE(paired_mdata)
    model.train(max_epochs=3, accelerator="gpu", enable_progress_bar=False)
    on_gpu = model.get_latent_representation(modality="atac")
    model.to_device("cpu")
    on_cpu = model.get_latent_representation(modality="atac")
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-4)
    model.save(str(tmp_path / "model"))
    loaded = ca.ConAAE.load(str(tmp_path / "model"), paired_mdata, accelerator="gpu")
    assert loaded.device.type == "cuda"
    reloaded = loaded.get_latent_representation(modality="atac")
    np.testing.assert_allclose(reloaded, on_cpu, atol=1e-4)
