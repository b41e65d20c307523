"""Tests of the ``conaae`` command line (`conaae_scverse.cli.main`)."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import mudata as md
import pytest
from _builders import build_mudata

from conaae_scverse.cli import main

OUTPUT_OBSM = ("X_conaae",)
OUTPUT_OBS = ("conaae_match", "conaae_match_distance")
LABEL_OBS = ("conaae_label", "conaae_label_confidence")


@pytest.fixture
def h5mu(tmp_path):
    """A tiny paired, labelled MuData written to tmp_path/in.h5mu."""
    path = tmp_path / "in.h5mu"
    build_mudata(paired=True, n_rna=30).write_h5mu(path)
    return path


def _error_line(capsys) -> str:
    """The single line on stderr, checked to be a one-line message, not a traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith("conaae: error: ")
    return lines[0]


def test_run_writes_the_documented_keys(h5mu, tmp_path, capsys):
    out = tmp_path / "out.h5mu"
    model_dir = tmp_path / "model"
    argv = [str(h5mu), "-o", str(out), "--labels-key", "cell_type", "--max-epochs", "2"]
    argv += ["--quiet", "--save-model", str(model_dir)]
    assert main(["run", *argv]) == 0
    assert "conaae run: done" in capsys.readouterr().out

    result = md.read_h5mu(out)
    source = md.read_h5mu(h5mu)
    for mod in ("rna", "atac"):
        adata = result[mod]
        for key in OUTPUT_OBSM:
            assert adata.obsm[key].shape[0] == adata.n_obs
        for key in (*OUTPUT_OBS, *LABEL_OBS):
            assert key in adata.obs
        # the matches name cells of the other modality
        other = result["atac" if mod == "rna" else "rna"]
        assert set(adata.obs["conaae_match"]) <= set(other.obs_names)
        assert set(adata.obs["conaae_label"].dropna()) <= {"alpha", "beta"}
        # nothing else changed
        assert list(adata.obs_names) == list(source[mod].obs_names)
        assert set(adata.obs.columns) - set(source[mod].obs.columns) == {
            *OUTPUT_OBS,
            *LABEL_OBS,
        }
    assert (model_dir / "model.pt").is_file()
    assert (model_dir / "settings.json").is_file()


def test_run_without_labels_writes_no_label_keys(h5mu, tmp_path):
    out = tmp_path / "out.h5mu"
    assert main(["run", str(h5mu), "-o", str(out), "--max-epochs", "1", "--quiet"]) == 0
    result = md.read_h5mu(out)
    for mod in ("rna", "atac"):
        assert "X_conaae" in result[mod].obsm
        assert "conaae_match" in result[mod].obs
        assert not set(LABEL_OBS) & set(result[mod].obs.columns)


def test_run_calls_unconfident_cells_unknown(h5mu, tmp_path):
    out = tmp_path / "out.h5mu"
    argv = [str(h5mu), "-o", str(out), "--labels-key", "cell_type", "--max-epochs", "1"]
    assert main(["run", *argv, "--quiet", "--min-confidence", "1.0"]) == 0
    for mod in ("rna", "atac"):
        obs = md.read_h5mu(out)[mod].obs
        assert list(obs["conaae_label"].cat.categories) == ["alpha", "beta", "unknown"]
        below = obs["conaae_label_confidence"].to_numpy() < 1.0
        assert below.any()
        assert (obs["conaae_label"][below] == "unknown").all()


def test_run_bad_min_confidence_is_one_line_and_exit_2(h5mu, tmp_path, capsys):
    argv = [str(h5mu), "-o", str(tmp_path / "o.h5mu"), "--labels-key", "cell_type"]
    assert main(["run", *argv, "--min-confidence", "2"]) == 2
    line = _error_line(capsys)
    assert "--min-confidence must be a number in (0, 1]" in line
    assert not (tmp_path / "o.h5mu").exists()


def test_run_input_components(h5mu, tmp_path, capsys):
    argv = [str(h5mu), "-o", str(tmp_path / "o.h5mu"), "--max-epochs", "1", "--quiet"]
    assert main(["run", *argv, "--input-components", "-1"]) == 2
    assert "--input-components must be 'auto' or a non-negative integer" in _error_line(capsys)
    model_dir = tmp_path / "model"
    assert main(["run", *argv, "--input-components", "5", "--save-model", str(model_dir)]) == 0
    settings = json.loads((model_dir / "settings.json").read_text())
    assert settings["n_components"] == {"rna": 5, "atac": 5}


def test_run_input_transform(h5mu, tmp_path):
    argv = [str(h5mu), "-o", str(tmp_path / "o.h5mu"), "--max-epochs", "1", "--quiet"]
    model_dir = tmp_path / "model"
    argv += ["--input-transform", "normalize_log1p", "--save-model", str(model_dir)]
    assert main(["run", *argv]) == 0
    settings = json.loads((model_dir / "settings.json").read_text())
    assert settings["log1p"] == {"rna": True, "atac": True}
    assert all(total > 0 for total in settings["cell_total"].values())
    with pytest.raises(SystemExit) as info:  # argparse: not one of the choices
        main(["run", *argv[:-2], "--input-transform", "sqrt", "--overwrite"])
    assert info.value.code == 2


def test_run_atac_input_transform_and_depth_invariance(h5mu, tmp_path, capsys):
    argv = [str(h5mu), "-o", str(tmp_path / "o.h5mu"), "--max-epochs", "1", "--quiet"]
    model_dir = tmp_path / "model"
    argv += ["--atac-input-transform", "normalize_log1p", "--depth-invariance", "10"]
    assert main(["run", *argv, "--save-model", str(model_dir)]) == 0
    settings = json.loads((model_dir / "settings.json").read_text())
    assert settings["cell_total"]["rna"] == 0  # RNA keeps --input-transform's default
    assert settings["cell_total"]["atac"] > 0
    assert settings["init_params"]["loss_weights"]["depth_invariance"] == 10
    code = main(["run", *argv[:-1], "-1", "--overwrite"])  # a negative weight
    assert code == 2
    assert "depth_invariance" in _error_line(capsys)


def test_run_missing_input_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["run", str(tmp_path / "nope.h5mu"), "-o", str(tmp_path / "out.h5mu")])
    assert code == 2
    line = _error_line(capsys)
    assert "nope.h5mu" in line
    assert "not found" in line
    assert not (tmp_path / "out.h5mu").exists()


def test_run_missing_modality_is_one_line_and_exit_2(h5mu, tmp_path, capsys):
    code = main(["run", str(h5mu), "-o", str(tmp_path / "o.h5mu"), "--atac-mod", "chromatin"])
    assert code == 2
    line = _error_line(capsys)
    assert "'chromatin'" in line
    assert "['rna', 'atac']" in line
    assert not (tmp_path / "o.h5mu").exists()


def test_run_missing_labels_key_is_one_line_and_exit_2(h5mu, tmp_path, capsys):
    code = main(["run", str(h5mu), "-o", str(tmp_path / "o.h5mu"), "--labels-key", "nope"])
    assert code == 2
    assert "'nope'" in _error_line(capsys)


def test_errors_name_the_command_line_option(h5mu, tmp_path, capsys):
    code = main(["run", str(h5mu), "-o", str(tmp_path / "o.h5mu"), "--rna-mod", "gex"])
    assert code == 2
    line = _error_line(capsys)
    assert "'gex'" in line and "Pass --rna-mod one of these" in line
    assert "rna_mod" not in line


def test_run_refuses_to_overwrite(h5mu, tmp_path, capsys):
    out = tmp_path / "out.h5mu"
    out.write_text("keep me")
    assert main(["run", str(h5mu), "-o", str(out), "--max-epochs", "1", "--quiet"]) == 2
    assert "--overwrite" in _error_line(capsys)
    assert out.read_text() == "keep me"


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["run", "in.h5mu"])  # --output is required
    assert info.value.code == 2
    assert "--output" in capsys.readouterr().err


@pytest.mark.slow  # the README's demo command; trains the default 500 steps
def test_demo_writes_h5mu_umap_and_metrics(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--n-cells", "200", "--max-epochs", "2", "--output", str(out), "--quiet"]
    assert main(argv) == 0
    assert "conaae demo: done" in capsys.readouterr().out
    assert (out / "umap.png").stat().st_size > 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["cells"] == {"rna": 200, "atac": 200}
    for key in ("recall@1", "recall@10", "foscttm", "hidden_atac_label_accuracy"):
        assert 0.0 <= report[key] <= 1.0
    result = md.read_h5mu(out / "demo.h5mu")
    # The labels hidden from training are back in the written file.
    assert result["atac"].obs["batch"].notna().all()
    assert result["rna"].obsm["X_conaae"].shape[0] == 200
    assert "conaae_match" in result["atac"].obs


def test_run_links_peaks_to_genes_from_an_annotation(tmp_path, capsys):
    # Peaks named by coordinates and a BED with one gene per peak: the links prior runs.
    mdata = build_mudata(paired=False, labels="rna", n_genes=6, n_peaks=6)
    mdata.mod["rna"].var_names = [f"G{j}" for j in range(6)]
    mdata.mod["atac"].var_names = [f"chr1:{10_000 * j}-{10_000 * j + 500}" for j in range(6)]
    source = tmp_path / "in.h5mu"
    mdata.write_h5mu(source)
    bed = tmp_path / "genes.bed"
    bed.write_text(
        "".join(f"chr1\t{10_000 * j + 100}\t{10_000 * j + 3000}\tG{j}\t0\t+\n" for j in range(6))
    )
    out = tmp_path / "out.h5mu"
    argv = [str(source), "-o", str(out), "--labels-key", "cell_type", "--max-epochs", "2"]
    assert main(["run", *argv, "--quiet", "--gene-annotation", str(bed)]) == 0
    assert "conaae run: done" in capsys.readouterr().out
    result = md.read_h5mu(out)
    assert result["atac"].obs["conaae_label"].notna().all()


def test_run_with_a_sample_column(tmp_path, capsys):
    mdata = build_mudata(n_rna=30)
    for mod in ("rna", "atac"):
        adata = mdata.mod[mod]
        adata.obs["donor"] = [f"d{i % 2}" for i in range(adata.n_obs)]
    path, out, model_dir = tmp_path / "in.h5mu", tmp_path / "out.h5mu", tmp_path / "model"
    mdata.write_h5mu(path)
    argv = [str(path), "-o", str(out), "--labels-key", "cell_type", "--batch-key", "donor"]
    assert (
        main(["run", *argv, "--max-epochs", "1", "--quiet", "--save-model", str(model_dir)]) == 0
    )
    settings = json.loads((model_dir / "settings.json").read_text())
    assert settings["setup"]["batch_key"] == "donor"
    assert settings["batch_categories"] == {"rna": ["d0", "d1"], "atac": ["d0", "d1"]}


def test_run_missing_batch_key_names_the_option(h5mu, tmp_path, capsys):
    code = main(["run", str(h5mu), "-o", str(tmp_path / "o.h5mu"), "--batch-key", "donor"])
    assert code == 2
    line = _error_line(capsys)
    assert "'donor'" in line and "leave out --batch-key" in line
