"""Training under Lightning DDP on CPU (gloo), two processes.

``strategy="ddp_spawn"`` is used in the test because it runs inside the pytest process;
``strategy="ddp"`` re-executes the calling command in each worker, which suits scripts (see
``test_ddp_script``) but not an in-process pytest run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import conaae_scverse as ca
from conaae_scverse._data_module import ShardedBatchSampler


def test_sharded_sampler_single_process_covers_every_cell_once():
    sampler = ShardedBatchSampler(103, 10, shuffle=True, drop_last=True, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 10
    flat = np.concatenate(batches)
    assert len(np.unique(flat)) == 100
    # a new epoch draws a new order
    assert not np.array_equal(np.concatenate(list(sampler)), flat)


def test_sharded_sampler_ranks_take_disjoint_batches(monkeypatch):
    seen = []
    for rank in (0, 1):
        world = staticmethod(lambda r=rank: (r, 2))
        monkeypatch.setattr(ShardedBatchSampler, "_rank_world", world)
        sampler = ShardedBatchSampler(100, 10, shuffle=True, drop_last=True, seed=3)
        assert len(sampler) == 5
        seen.append(np.concatenate(list(sampler)))
    assert len(np.intersect1d(seen[0], seen[1])) == 0
    assert len(np.union1d(seen[0], seen[1])) == 100


def _model(n_cells=160):
    mdata = ca.datasets.simulate(n_cells=n_cells, random_state=0)
    ca.ConAAE.setup_mudata(mdata, labels_key="batch")
    return mdata, ca.ConAAE(mdata, n_hidden=(32, 16), n_latent=8)


@pytest.mark.slow
def test_ddp_spawn_two_cpu_processes():
    mdata, model = _model()
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    model.train(
        max_epochs=2,
        devices=2,
        strategy="ddp_spawn",
        accelerator="cpu",
        enable_progress_bar=False,
        batch_size=32,
    )
    assert model.is_trained
    after = model.module.state_dict()
    changed = [not torch.equal(v, after[k]) for k, v in before.items() if v.is_floating_point()]
    assert any(changed)
    z = model.get_latent_representation(modality="atac")
    assert z.shape == (160, 8) and np.isfinite(z).all()
    model.write_results()
    assert "X_conaae" in mdata["rna"].obsm


@pytest.mark.slow
def test_ddp_script(tmp_path):
    """``strategy="ddp"`` from a script: every worker re-runs it; rank 0 keeps the history."""
    script = tmp_path / "train_ddp.py"
    script.write_text(
        textwrap.dedent(
            """
            import conaae_scverse as ca
            if __name__ == "__main__":
                mdata = ca.datasets.simulate(n_cells=160, random_state=0)
                ca.ConAAE.setup_mudata(mdata, labels_key="batch")
                model = ca.ConAAE(mdata, n_hidden=(32, 16), n_latent=8)
                model.train(max_epochs=2, devices=2, strategy="ddp", accelerator="cpu",
                            enable_progress_bar=False, batch_size=32)
                print("TRAINED", model.is_trained, len(model.history))
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("TRAINED True") == 2
