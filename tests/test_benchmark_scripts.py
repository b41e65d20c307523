"""Each benchmark script runs in --quick mode and writes its markdown table and JSON.

The script runs are ``slow`` tests (``nox -s slow``): each starts a process and trains.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
#: Scripts that do not take the shared flags of ``_common.add_standard_arguments`` yet.
STANDARD_SCRIPTS = [
    "bmmc_donors.py",
    "demo_seeds.py",
    "geometry_check.py",
    "label_ceiling.py",
    "label_transfer.py",
    "peers.py",
    "prior_cost.py",
    "reproduce.py",
    "samples.py",
    "scale.py",
    "speed.py",
    "sweep.py",
    "unknown_types.py",
    "vs_scglue.py",
    "wide.py",
]


def _import(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def _square(x: int) -> int:
    return x * x


def test_standard_arguments_and_seed_range():
    common = _import("_common")
    parser = argparse.ArgumentParser()
    common.add_standard_arguments(parser, seeds=3, threads=2, data_dir=True, first_seed=True)
    args = parser.parse_args(["--seeds", "2", "--first-seed", "4", "--jobs", "2", "--out", "x"])
    assert list(common.seed_range(args)) == [4, 5]
    assert (args.jobs, args.threads, args.out, args.data_dir, args.quick) == (
        2,
        2,
        Path("x"),
        None,
        False,
    )
    assert list(common.seed_range(parser.parse_args([]))) == [0, 1, 2]


@pytest.mark.parametrize("jobs", [1, 2])
def test_run_tasks_returns_results_in_task_order(jobs):
    common = _import("_common")
    seen = []
    results = common.run_tasks(
        _square, [3, 1, 2], jobs=jobs, on_result=lambda task, result: seen.append((task, result))
    )
    assert results == [9, 1, 4]
    assert seen == [(3, 9), (1, 1), (2, 4)]


def _threads_then_spoil(task: int) -> int:
    """Torch threads at the start of a task, which then leaves them at 2 (as numba does)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    return threads


@pytest.mark.parametrize("jobs", [1, 2])
def test_run_tasks_gives_every_task_the_threads_asked_for(jobs):
    import torch

    common = _import("_common")
    before = torch.get_num_threads()
    try:
        # An earlier task of the same process must not change a later task's threads.
        assert common.run_tasks(_threads_then_spoil, [0, 1, 2], jobs=jobs, threads=1) == [1, 1, 1]
    finally:
        torch.set_num_threads(before)


def test_rna_clusters_leave_torch_threads_as_they_were():
    import anndata as ad
    import numpy as np
    import torch
    from scipy import sparse

    common = _import("_common")
    rng = np.random.default_rng(0)
    counts = sparse.csr_matrix(rng.poisson(2.0, size=(120, 30)).astype(np.float32))
    rna = ad.AnnData(counts)
    rna.var_names = [f"g{i}" for i in range(30)]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        clusters = common.rna_clusters(rna)
        assert len(clusters) == 120
        assert torch.get_num_threads() == 1  # scanpy's numba kernels would leave every core
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("script", STANDARD_SCRIPTS)
def test_every_script_takes_the_standard_flags(script):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    for flag in ("--out DIR", "--seeds N", "--jobs J", "--threads T", "--quick"):
        assert flag in proc.stdout
    assert "--out-dir" not in proc.stdout and "--seed " not in proc.stdout


def _run_quick(script: str, out: Path, *flags: str) -> subprocess.CompletedProcess:
    """Run a benchmark script in --quick mode with its outputs in ``out``; check it succeeded."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *flags, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "stem", "needs_data"),
    [
        ("speed.py", "speed_quick", True),
        ("scale.py", "scale_quick", False),
        ("peers.py", "peers_quick", False),
        ("label_transfer.py", "label_transfer_quick", True),
        ("label_ceiling.py", "label_ceiling_quick", True),
        ("sweep.py", "sweep_quick", True),
        ("demo_seeds.py", "demo_seeds_quick", False),
        ("prior_cost.py", "prior_cost_quick", False),
        ("geometry_check.py", "geometry_check_quick", False),
        ("unknown_types.py", "unknown_types_quick", False),
        ("vs_scglue.py", "vs_scglue_quick", True),
        ("wide.py", "wide_quick", False),
        ("samples.py", "samples_quick", False),
        ("bmmc_donors.py", "bmmc_donors_quick", True),
    ],
)
def test_quick_mode_writes_table_and_json(tmp_path, script, stem, needs_data):
    if needs_data and not (DATA / "sci_car_a549").is_dir():
        pytest.skip("sci-CAR data not available at ../shared/data")
    proc = _run_quick(script, tmp_path)
    assert "| --- |" in proc.stdout or "|---|" in proc.stdout  # a markdown table was printed
    md = (tmp_path / f"{stem}.md").read_text()
    assert md.startswith("# ") and "|---|" in md
    payload = json.loads((tmp_path / f"{stem}.json").read_text())
    assert "environment" in payload


@pytest.mark.slow
def test_the_scglue_comparison_runs_on_the_simulation_and_its_genome(tmp_path):
    proc = _run_quick(
        "vs_scglue.py",
        tmp_path,
        "--dataset",
        "simulated",
        "--methods",
        "conaae",
        "conaae_links",
        "conaae_links_contrastive",
        "conaae_links_release",
        "conaae_links_depth",
        "conaae_links_thinning",
        "conaae_links_no_contrastive",
    )
    md = (tmp_path / "vs_scglue_simulated_quick.md").read_text()
    assert (
        "simulate_wide(300" in md
        and "peak-gene links (default: prior, anchors, consistency, ATAC depth)" in md
    )
    assert "links, pseudo-labels held by the triplet" in md
    assert "triplet holds, pseudo-labels half of training" in md
    assert "triplet holds, counts scaled to the median depth" in md
    assert "triplet holds, depth invariance" in md
    assert "without the contrastive term" in md
    assert "FOSCTTM, ATAC labelled right" in md
    assert "seed 0: accuracy" in proc.stdout


def test_scglue_comparison_combines_runs_of_separate_sessions(tmp_path):
    vs_scglue = _import("vs_scglue")

    def run(method, seed, accuracy):
        return {
            "method": method,
            "seed": seed,
            "accuracy": accuracy,
            "foscttm": 0.1,
            "seconds": 10.0,
            "peak_mib": 100.0,
        }

    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"results": [run("conaae_links", 1, 0.5), run("scglue", 0, 0.9)]}))
    second.write_text(
        json.dumps({"results": [run("conaae_links", 0, 0.4), run("scglue", 0, 0.8)]})
    )
    out = tmp_path / "out"
    argv = ["--dataset", "simulated", "--combine", str(first), str(second), "--out", str(out)]
    assert vs_scglue.main(argv) == 0
    md = (out / "vs_scglue_simulated.md").read_text()
    assert f"| {vs_scglue.METHODS['conaae_links']} | 0 1 | 0.40 0.50 |" in md
    assert "| scGLUE | 0 | 0.80 |" in md  # the later file wins
    assert "combined from the runs in" in md


def test_unknown_types_merges_runs_a_later_file_replacing_a_dataset(tmp_path):
    unknown_types = _import("unknown_types")

    def run(dataset, held_out, seed, accuracy):
        calls = {cut: {"novel_called_unknown": 0.5, "known_called_unknown": 0.1} for cut in "58"}
        return {
            "dataset": dataset,
            "held_out": held_out,
            "seed": seed,
            "novel_fraction": 0.2,
            "auroc": 0.7,
            "auroc_match_distance": 0.6,
            "auroc_prior": 0.8,
            "known_accuracy": accuracy,
            "calls": {f"0.{cut}": value for cut, value in calls.items()},
        }

    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(
        json.dumps({"results": [run("snare", "BJ", 0, 0.91), run("pbmc", "T", 0, 0.70)]})
    )
    second.write_text(json.dumps({"results": [run("pbmc", "T", 0, 0.75)]}))
    out = tmp_path / "out"
    assert unknown_types.main(["--merge", str(first), str(second), "--out", str(out)]) == 0
    md = (out / "unknown_types.md").read_text()
    assert "| snare | BJ |" in md and md.count("| pbmc | T |") == 1
    assert md.split("| pbmc | T |")[1].splitlines()[0].rstrip().endswith("| 0.75 |")
    assert "Merged from" in md


def test_scglue_comparison_gives_the_recall_of_each_type_per_seed():
    vs_scglue = _import("vs_scglue")

    def run(method, seed, recall):
        return {"method": method, "seed": seed, "recall_per_type": recall}

    results = [
        run("conaae_links", 0, {"T": [30, 0.9], "NK": [5, 0.2]}),
        run("conaae_links", 1, {"T": [28, 1.0], "NK": [5, 0.0]}),
        run("scglue", 0, {"T": [30, 0.8], "NK": [5, 0.6]}),
        {"method": "diagvi", "seed": 0},  # a run made before the table: left out
    ]
    table = vs_scglue._recall_table(results)
    assert "| T | 30 28 | 0.90 1.00 | 0.80 |" in table  # largest type first
    assert "| NK | 5 | 0.20 0.00 | 0.60 |" in table  # the same cells in both seeds
    assert table.index("| T |") < table.index("| NK |")
    assert "DIAGVI" not in table
    assert vs_scglue._recall_table([{"method": "scglue", "seed": 0}]) == ""


def test_scglue_comparison_splits_foscttm_by_whether_the_atac_cell_was_labelled_right():
    import anndata as ad
    import mudata as md
    import pandas as pd

    vs_scglue = _import("vs_scglue")
    # Four pairs on a line; ATAC cell "a3" sits on RNA cell r0, far from its partner r3.
    partners = {"true_partner": ["a0", "a1", "a2", "a3"]}
    rna = ad.AnnData(obs=pd.DataFrame(partners, index=["r0", "r1", "r2", "r3"]))
    atac = ad.AnnData(obs=pd.DataFrame(index=["a3", "a0", "a1", "a2"]))
    mdata = md.MuData({"rna": rna, "atac": atac})
    z_rna = np.array([[0.0], [10.0], [20.0], [30.0]])
    z_atac = np.array([[0.0], [0.0], [10.0], [20.0]])  # a3 misplaced onto r0
    truth = np.array(["x", "x", "y", "y"])
    predicted = np.array(["x", "x", "y", "y"])
    predicted[0] = "z"  # a3: labelled wrong
    depth = np.ones((4, 1))  # no ATAC X here: the counts are given
    result = vs_scglue._score(mdata, z_rna, z_atac, predicted, truth, 1.0, atac_counts=depth)
    # Pair (r3, a3): r3 has a0..a2 at most as far as a3 (3/3); a3 has r0..r2 closer (3/3).
    assert result["foscttm_labelled_wrong"] == pytest.approx(1.0)
    # Pair (r0, a0): a3 ties with a0 for r0 (1/3), a0 has r0 only (0/3): 1/6; the others 0.
    assert result["foscttm_labelled_right"] == pytest.approx((1 / 6) / 3)
    assert result["foscttm_share_from_wrong"] == pytest.approx(1.0 / (1.0 + 1 / 6))
    table = vs_scglue._foscttm_table([{"method": "conaae_links", "seed": 0, **result}])
    assert (
        "| Con-AAE, peak-gene links (default: prior, anchors, consistency, ATAC depth) | 0 |"
        in table
    )
    assert vs_scglue._foscttm_table([{"method": "scglue", "seed": 0}]) == ""


def test_scglue_comparison_scores_accuracy_per_fifth_of_atac_depth():
    from scipy import sparse

    vs_scglue = _import("vs_scglue")
    # Ten cells of depths 10, 9, .., 1 (two columns); the three deepest are labelled wrong.
    counts = sparse.csr_matrix(np.column_stack([np.arange(10, 0, -1), np.zeros(10)]))
    right = np.array([False, False, False, True, True, True, True, True, True, True])
    # Fifths, shallowest first: depths (1, 2), (3, 4), (5, 6), (7, 8), (9, 10).
    assert vs_scglue._accuracy_by_depth(right, counts) == [1.0, 1.0, 1.0, 0.5, 0.0]
    table = vs_scglue._depth_table(
        [{"method": "scglue", "seed": 2, "accuracy": 0.7, "accuracy_by_depth": [1, 1, 1, 0.5, 0]}]
    )
    assert "| scGLUE | 2 | 0.700 | 1.00 | 1.00 | 1.00 | 0.50 | 0.00 |" in table
    assert vs_scglue._depth_table([{"method": "scglue", "seed": 0}]) == ""


def test_depth_diagnostic_scales_every_cell_to_the_median_total():
    import anndata as ad
    import mudata as md
    import numpy as np
    from scipy import sparse

    common = _import("_common")
    counts = sparse.csr_matrix(np.array([[1.0, 1.0], [4.0, 0.0], [0.0, 9.0]]))
    mdata = md.MuData({"rna": ad.AnnData(counts.copy()), "atac": ad.AnnData(counts.copy())})
    common.scale_to_median_depth(mdata)
    for adata in mdata.mod.values():
        np.testing.assert_allclose(np.asarray(adata.X.sum(axis=1)).ravel(), [4.0, 4.0, 4.0])
        np.testing.assert_allclose(adata.X.toarray()[2], [0.0, 4.0])  # zeros stay zeros
    # The same values as scanpy's normalize_total (and the model's normalize_log1p).
    import scanpy as sc

    scaled = sc.pp.normalize_total(ad.AnnData(counts.copy()), inplace=False)["X"]
    np.testing.assert_allclose(scaled.toarray(), mdata["rna"].X.toarray(), rtol=1e-6)


def test_label_transfer_scales_depth_only_where_both_modalities_hold_counts():
    label_transfer = _import("label_transfer")
    depth = label_transfer.MEDIAN_DEPTH
    for dataset in ("sci_car", "bmmc", "pbmc"):
        assert any(depth in name for name in label_transfer.settings_for(dataset)), dataset
    # The SNARE-seq files and datasets.simulate hold normalised values, not counts.
    for dataset in ("snare", "simulated"):
        assert not any(depth in name for name in label_transfer.settings_for(dataset))
    # A diagnostic: never among the settings run by default.
    assert not any(depth in name for name in label_transfer.DEFAULT_SETTINGS)
    # The links setting still needs coordinates.
    assert f"no ATAC labels, links prior, {depth}" not in label_transfer.settings_for("sci_car")


def test_diagvi_guidance_graph_joins_linked_features_both_ways():
    pytest.importorskip("torch_geometric")
    import anndata as ad
    import numpy as np
    import pandas as pd
    from scipy import sparse

    vs_scglue = _import("vs_scglue")
    # 3 peaks x 2 linked genes; gene "g_other" is not an RNA feature, so its link is dropped
    links = ad.AnnData(
        sparse.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])),
        obs=pd.DataFrame(index=["p0", "p1", "p2"]),
        var=pd.DataFrame(index=["g1", "g_other"]),
    )
    rna_names = pd.Index(["g0", "g1"])
    graph = vs_scglue._guidance_graph(links, rna_names, n_atac=3)
    edges = set(map(tuple, graph.edge_index.T.tolist()))
    nodes = range(5)  # genes 0-1, then peaks 2-4
    assert graph.num_nodes == 5
    assert {(1, 2), (2, 1), (1, 4), (4, 1)} | {(i, i) for i in nodes} == edges
    assert graph.rna_indices.tolist() == [0, 1] and graph.atac_indices.tolist() == [2, 3, 4]
    assert len(graph.edge_weight) == len(graph.edge_sign) == len(edges)


def test_peers_that_cannot_run_say_why():
    vs_scglue = _import("vs_scglue")
    import importlib.util

    import scvi

    why = vs_scglue._not_runnable("diagvi")
    has_dependencies = all(importlib.util.find_spec(m) for m in ("torch_geometric", "geomloss"))
    if not hasattr(scvi.external, "DIAGVI"):
        assert "has no DIAGVI" in why
    elif not has_dependencies:
        assert why.startswith("not installed: pip install")
    else:
        assert why is None
    assert vs_scglue._not_runnable("conaae_links") is None


def test_sweep_merge_pools_seeds_and_refuses_duplicates(tmp_path, capsys):
    sweep = _import("sweep")

    def run(config, seed, foscttm):
        return {"config": config, "dataset": "snare", "seed": seed, "foscttm": foscttm}

    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"runs": [run("default", 0, 0.1), run("other", 0, 0.5)]}))
    second.write_text(json.dumps({"runs": [run("default", 1, 0.3)]}))
    results = sweep.main(["--merge", str(first), str(second), "--configs", "default"])
    assert [r["seed"] for r in results] == [0, 1]
    out = capsys.readouterr().out
    assert "| default | 2 | 0.200 ± 0.141 |" in out and "| other |" not in out
    with pytest.raises(SystemExit, match="same config, dataset and seed twice"):
        sweep.main(["--merge", str(first), str(first)])


@pytest.mark.slow
def test_scale_backed_writes_the_data_in_blocks_and_reads_it_backed(tmp_path):
    _run_quick("scale.py", tmp_path, "--backed", "--match-sizes")
    payload = json.loads((tmp_path / "scale_backed_quick.json").read_text())
    for result in payload["results"]:
        assert set(result["stages"]) == {"generate", "setup", "train", "write"}
        assert result["h5mu_gb"] > 0


def test_blockwise_file_equals_the_in_memory_data(tmp_path):
    import mudata as md

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import scale

    in_memory = scale.synthetic_mudata(45_000, 30, 50, 0.1, 0.05, seed=3)
    scale.write_synthetic_h5mu(tmp_path / "x.h5mu", 45_000, 30, 50, 0.1, 0.05, seed=3)
    on_disk = md.read_h5mu(tmp_path / "x.h5mu", backed=True)
    for mod in ("rna", "atac"):
        matrix = on_disk[mod].X
        assert matrix.group["indptr"].dtype == "int64"  # room for > 2^31 non-zeros
        assert (matrix.to_memory() != in_memory[mod].X).nnz == 0
        assert on_disk[mod].obs.equals(in_memory[mod].obs)
    on_disk.file.close()


@pytest.mark.skipif(
    not (DATA / "pbmc_multiome_muon_test").is_dir(), reason="PBMC test data not available"
)
def test_pbmc_labels_are_rna_clusters_shared_by_each_cells_atac_profile():
    import numpy as np

    common = _import("_common")
    mdata = common.load_pbmc(DATA, random_state=1)
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    assert rna.n_obs == atac.n_obs < 1000  # cells without counts in a modality are dropped
    for adata in (rna, atac):
        assert (np.asarray(adata.X.sum(axis=1)).ravel() > 0).all()
    partner = common.partner_index(mdata)
    assert not np.array_equal(partner, np.arange(rna.n_obs))  # ATAC rows in their own order
    rna_types = rna.obs["cell_type"].astype(str).to_numpy()
    np.testing.assert_array_equal(rna_types, atac.obs["cell_type"].astype(str).to_numpy()[partner])
    assert 3 <= len(set(rna_types)) <= 10
    # each cluster is named by its most specific gene
    assert all(name.split("+")[0] in rna.var_names for name in set(rna_types))


def test_label_ceiling_reads_labels_from_depth_alone_only_in_counts():
    label_ceiling = _import("label_ceiling")
    rng = np.random.default_rng(0)
    labels = np.repeat(["shallow", "deep"], 60)
    # The same profile at two depths: only the total tells the labels apart.
    depth = np.where(labels == "deep", 400, 40)
    counts = np.stack([rng.multinomial(n, np.full(20, 0.05)) for n in depth]).astype(float)
    assert label_ceiling.depth_alone_accuracy(counts, labels, folds=3, seed=0) > 0.95
    same_depth = np.stack([rng.multinomial(100, np.full(20, 0.05)) for _ in labels]).astype(float)
    assert label_ceiling.depth_alone_accuracy(same_depth, labels, folds=3, seed=0) < 0.75
    assert label_ceiling.depth_alone_accuracy(counts - 0.5, labels, folds=3, seed=0) is None
