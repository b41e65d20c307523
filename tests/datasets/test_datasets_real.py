from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse as sp

from conaae_scverse import TRUE_PARTNER_KEY
from conaae_scverse._constants import DATA_DIR_ENV
from conaae_scverse.datasets import _fetch, sci_car_a549, snare_seq_cell_lines

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"

pytestmark = pytest.mark.skipif(
    not (DATA_DIR / "sci_car_a549").is_dir() or not (DATA_DIR / "snare_seq_cell_lines").is_dir(),
    reason=f"real data not available at {DATA_DIR} (expected ../shared/data from the repo root)",
)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)


@pytest.fixture(scope="module")
def sci_car():
    return sci_car_a549(DATA_DIR, download=False)


@pytest.fixture(scope="module")
def snare():
    return snare_seq_cell_lines(DATA_DIR, download=False)


def _check_paired(mdata, label_key):
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    assert set(mdata.mod) == {"rna", "atac"}
    assert list(rna.obs_names) == list(atac.obs_names)
    assert rna.obs_names.is_unique
    for adata in (rna, atac):
        assert adata.X.dtype == np.float32
        assert isinstance(adata.obs[label_key].dtype, pd.CategoricalDtype)
        assert list(adata.obs[TRUE_PARTNER_KEY]) == list(adata.obs_names)
    assert all(isinstance(v, str) for v in mdata.uns["dataset"].values())
    assert {"name", "citation", "url"} <= set(mdata.uns["dataset"])


def test_sci_car_a549(sci_car):
    rna, atac = sci_car.mod["rna"], sci_car.mod["atac"]
    assert rna.shape == (1874, 2613)
    assert atac.shape == (1874, 815)
    assert sp.isspmatrix_csr(rna.X)
    assert sp.isspmatrix_csr(atac.X)
    _check_paired(sci_car, "treatment_time")
    for adata in (rna, atac):
        labels = adata.obs["treatment_time"]
        assert list(labels.cat.categories) == ["0h", "1h", "3h"]
        assert labels.value_counts().to_dict() == {"0h": 473, "1h": 694, "3h": 707}
    assert rna.obs_names[0] == "sci-RNA-C-007.CTCGGAGCAA"
    assert rna.var_names[0] == "gene_0"
    assert atac.var_names[-1] == "peak_814"
    # cells x features: the stored matrices are features x cells
    expr = sp.load_npz(DATA_DIR / "sci_car_a549" / "diff_expr_shared_cells.npz")
    np.testing.assert_array_equal(rna.X[:5].toarray(), expr[:, :5].T.toarray())
    assert rna.X.nnz / np.prod(rna.shape) == pytest.approx(0.18, abs=0.01)
    assert atac.X.nnz / np.prod(atac.shape) == pytest.approx(0.74, abs=0.01)


def test_sci_car_labels_follow_metadata(sci_car):
    meta = pd.read_csv(
        DATA_DIR / "sci_car_a549" / "GSM3271040_RNA_sciCAR_A549_cell.txt", index_col="sample"
    )
    obs = sci_car.mod["atac"].obs
    hours = meta.loc[obs.index, "treatment_time"].astype(int).astype(str) + "h"
    np.testing.assert_array_equal(obs["treatment_time"].astype(str).to_numpy(), hours.to_numpy())


def test_snare_seq_cell_lines(snare):
    rna, atac = snare.mod["rna"], snare.mod["atac"]
    assert rna.shape == (1047, 10)
    assert atac.shape == (1047, 19)
    assert isinstance(rna.X, np.ndarray)
    assert isinstance(atac.X, np.ndarray)
    _check_paired(snare, "cell_line")
    for adata in (rna, atac):
        labels = adata.obs["cell_line"]
        assert list(labels.cat.categories) == ["H1", "GM12878", "BJ", "K562"]
        assert labels.value_counts().to_dict() == {
            "H1": 379,
            "GM12878": 324,
            "BJ": 201,
            "K562": 143,
        }
    assert rna.obs_names[0] == "ACTTTCTAATCA"
    assert rna.obs["cell_line"].iloc[0] == "GM12878"
    raw = np.load(DATA_DIR / "snare_seq_cell_lines" / "SNAREseq_atac_feat.npy")
    np.testing.assert_allclose(atac.X, raw.astype(np.float32))


def test_environment_variable(monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(DATA_DIR))
    assert snare_seq_cell_lines(download=False).mod["rna"].shape == (1047, 10)


def test_argument_overrides_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(DATA_DIR))
    with pytest.raises(FileNotFoundError, match=r"snare_seq_cell_lines.*missing"):
        snare_seq_cell_lines(tmp_path, download=False)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert snare_seq_cell_lines(DATA_DIR, download=False).mod["atac"].shape == (1047, 19)


def test_dataset_folder_itself_is_accepted():
    mdata = snare_seq_cell_lines(DATA_DIR / "snare_seq_cell_lines", download=False)
    assert mdata.mod["atac"].shape == (1047, 19)


def test_missing_files_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not found.*pass `download=True`"):
        sci_car_a549(tmp_path, download=False)


def test_corrupt_file_is_rejected(tmp_path):
    shutil.copytree(DATA_DIR / "snare_seq_cell_lines", tmp_path / "snare_seq_cell_lines")
    path = tmp_path / "snare_seq_cell_lines" / "SNAREseq_metadata.txt"
    path.chmod(0o644)
    with path.open("a") as handle:
        handle.write("AAAA\tBJ\t3\n")
    with pytest.raises(
        ValueError, match=r"SHA-256 mismatch for .*SNAREseq_metadata\.txt.*expected 4bfd"
    ):
        snare_seq_cell_lines(tmp_path, download=False)


def _fake_sci_car_download(monkeypatch, tmp_path, barcodes):
    """Serve the download from the local copy, with the barcodes as the published pickle."""
    calls = {}

    def fake_retrieve(url, known_hash, fname, path, progressbar):
        calls[fname] = known_hash
        target = Path(path) / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        if fname == "shared_cells.pkl":
            target.write_bytes(pickle.dumps(barcodes, protocol=2))
        else:
            shutil.copyfile(DATA_DIR / "sci_car_a549" / fname, target)
        return str(target)

    monkeypatch.setattr(_fetch.pooch, "os_cache", lambda name: tmp_path / "cache" / name)
    monkeypatch.setattr(_fetch.pooch, "retrieve", fake_retrieve)
    return calls


def test_sci_car_download_path(monkeypatch, tmp_path, sci_car):
    barcodes = (DATA_DIR / "sci_car_a549" / "shared_cells.txt").read_text().split()
    calls = _fake_sci_car_download(monkeypatch, tmp_path, barcodes)
    mdata = sci_car_a549()
    assert calls["shared_cells.pkl"] is None
    assert calls["diff_expr_shared_cells.npz"].startswith("sha256:1faee599")
    assert list(mdata.mod["rna"].obs_names) == list(sci_car.mod["rna"].obs_names)
    assert (mdata.mod["atac"].X != sci_car.mod["atac"].X).nnz == 0


def test_sci_car_download_rejects_wrong_barcodes(monkeypatch, tmp_path):
    barcodes = (DATA_DIR / "sci_car_a549" / "shared_cells.txt").read_text().split()
    _fake_sci_car_download(monkeypatch, tmp_path, barcodes[::-1])
    with pytest.raises(ValueError, match="is not the published one"):
        sci_car_a549(download=True)
