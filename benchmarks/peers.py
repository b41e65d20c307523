"""Con-AAE against its peers: same datasets, same splits, same metrics, one run.

Methods
-------
- **Con-AAE** (package defaults), unpaired: trained on 80 % of the cells, scored on the
  held-out 20 % (``_common.make_split``, as in ``reproduce.py``).
- **MultiVI** (``scvi.model.MULTIVI``): *needs pairing*: one AnnData of genes then peaks
  per cell, trained on all cells with their pairs known (transductive). Two rows:
  ``multivi_default`` is ``MULTIVI.train()`` with its own defaults (up to 500 epochs, early
  stopping), as a user runs it; ``multivi`` is cut to ``--multivi-epochs`` epochs (50) without
  early stopping. Scored with its per-modality latents (``expression`` vs
  ``accessibility``). Not an unpaired method: listed for speed and reference only.
- **GW-OT** (SCOT-like, our own implementation with POT): per-modality PCA of standardised
  log1p data, kNN-graph geodesic intra-modality distances, entropic Gromov-Wasserstein
  coupling (``ot.gromov.entropic_gromov_wasserstein``), barycentric projection of ATAC cells
  onto the RNA PCA space. Transductive (no out-of-sample map): fit and scored on all cells.
- **PCA** (no alignment): PCA per modality to the same dimension, fit on the training cells,
  scored on the held-out cells: the floor a method must beat.

Metrics (``conaae_scverse.metrics.evaluate_alignment``) on the evaluation cells: recall@10/50
(l1), FOSCTTM, and label transfer accuracy (5-NN majority vote of RNA labels onto ATAC cells in
the shared space, l2, identical for all methods). Wall time and peak RSS growth (``getrusage``
high-water mark, so only increases are visible) per method, one seed after the other
(``--seeds``; ``--jobs`` runs seeds and datasets in parallel processes). Shared 2-core
machine: wall times are noisy.

Examples
--------
python benchmarks/peers.py
python benchmarks/peers.py --quick
python benchmarks/peers.py --datasets sci_car --methods conaae gw_ot --seeds 3
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
import time
import traceback
from functools import partial
from pathlib import Path

import numpy as np
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

METHODS = ("conaae", "multivi", "multivi_default", "gw_ot", "pca")
PAIRING = {
    "conaae": "unpaired",
    "multivi": "needs pairing",
    "multivi_default": "needs pairing",
    "gw_ot": "unpaired",
    "pca": "unpaired (no alignment)",
}
PROTOCOL = {
    "conaae": "held-out 20 %",
    "multivi": "transductive (all cells, paired)",
    "multivi_default": "transductive (all cells, paired)",
    "gw_ot": "transductive (no out-of-sample map)",
    "pca": "held-out 20 %",
}


def _dense_log1p(x) -> np.ndarray:
    x = x.toarray() if sparse.issparse(x) else np.asarray(x)
    x = np.asarray(x, dtype=np.float64)
    if x.min() >= 0:
        x = np.log1p(x)
    return x


def _pca(train, test, dim, seed):
    from sklearn.decomposition import PCA

    mean, std = train.mean(0), train.std(0) + 1e-8
    pca = PCA(n_components=min(dim, *train.shape), random_state=seed)
    pca.fit((train - mean) / std)
    return pca.transform((train - mean) / std), pca.transform((test - mean) / std)


def scores(test, z_rna, z_atac, key) -> dict:
    """Same metrics for every method on the cells of ``test`` (``common.score_alignment``)."""
    figures = common.score_alignment(test, z_rna, z_atac, labels_key=key, metric="l2")
    return {
        "n_eval": int(figures["n_pairs"]),
        "recall@10_l1": figures["recall@10_l1"],
        "recall@50_l1": figures["recall@50_l1"],
        "foscttm": figures["foscttm"],
        "label_transfer_acc": figures["label_transfer_accuracy"],
    }


def run_conaae(mdata, key, seed, args):
    from conaae_scverse import ConAAE

    split = common.make_split(mdata, seed=seed)
    ConAAE.setup_mudata(split.train, labels_key=key)
    model = ConAAE(split.train, seed=seed)
    kw = {"max_epochs": 2} if args.quick else {}
    model.train(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, **kw)
    z_r = model.get_latent_representation(split.test, "rna")
    z_a = model.get_latent_representation(split.test, "atac")
    out = scores(split.test, z_r, z_a, key)
    predicted = np.asarray(model.predict(split.test, "atac"), dtype=str)
    truth = split.test["atac"].obs[key].astype(str).to_numpy()
    out["classifier_atac_label_acc"] = float((predicted == truth).mean())
    return out


def run_pca(mdata, key, seed, args):
    split = common.make_split(mdata, seed=seed)
    dim = min(args.dim, split.train["rna"].n_vars, split.train["atac"].n_vars)  # same for both
    zs = []
    for mod in ("rna", "atac"):
        train = _dense_log1p(split.train[mod].X)
        test = _dense_log1p(split.test[mod].X)
        zs.append(_pca(train, test, dim, seed)[1])
    return scores(split.test, zs[0], zs[1], key)


def _geodesic(x, k):
    from scipy.sparse.csgraph import shortest_path
    from sklearn.neighbors import kneighbors_graph

    graph = kneighbors_graph(x, min(k, len(x) - 1), mode="distance", include_self=False)
    dist = shortest_path(graph, directed=False)
    finite = np.isfinite(dist)
    dist[~finite] = dist[finite].max() if finite.any() else 1.0
    return dist / dist.max()


def run_gw_ot(mdata, key, seed, args):
    import ot

    split = common.make_split(mdata, seed=seed, transductive=True)
    test = split.test  # all cells, row i of RNA paired with row i of ATAC (for scoring only)
    # GW sees the two modalities in independent random orders: no pairing by row order.
    rng = np.random.default_rng(seed)
    perm = rng.permutation(test["atac"].n_obs)
    x_rna = _dense_log1p(test["rna"].X)
    x_atac = _dense_log1p(test["atac"].X)[perm]
    dim = min(args.dim, x_rna.shape[1], x_atac.shape[1])
    z_rna = _pca(x_rna, x_rna, dim, seed)[0]
    z_atac = _pca(x_atac, x_atac, dim, seed)[0]
    c1, c2 = _geodesic(z_rna, args.gw_k), _geodesic(z_atac, args.gw_k)
    p, q = ot.unif(len(c1)), ot.unif(len(c2))
    coupling = ot.gromov.entropic_gromov_wasserstein(
        c1,
        c2,
        p,
        q,
        "square_loss",
        epsilon=args.gw_epsilon,
        max_iter=args.gw_iter,
    )
    col = coupling.sum(0)
    col[col == 0] = 1.0
    z_atac_on_rna = (coupling.T @ z_rna) / col[:, None]
    inverse = np.argsort(perm)
    return scores(test, z_rna, z_atac_on_rna[inverse], key)


def run_multivi(mdata, key, seed, args, *, own_defaults: bool = False):
    """MultiVI for ``--multivi-epochs`` epochs, or with its own ``train()`` defaults."""
    import anndata as ad
    import mudata as md
    import scvi

    scvi.settings.seed = seed
    split = common.make_split(mdata, seed=seed, transductive=True)
    test = split.test  # row i of RNA is paired with row i of ATAC: MultiVI is given this
    names = [f"cell{i}" for i in range(test["rna"].n_obs)]
    mods = {}
    for mod in ("rna", "atac"):
        x = sparse.csr_matrix(test[mod].X, dtype=np.float32)
        if x.nnz and (x.data.min() < 0 or not np.all(np.mod(x.data, 1) == 0)):
            x.data = np.round(np.clip(x.data, 0, None))  # MultiVI models counts
        a = ad.AnnData(x)
        a.obs_names = names
        a.var_names = [f"{mod}{i}" for i in range(x.shape[1])]
        mods[mod] = a
    paired = md.MuData(mods)
    scvi.model.MULTIVI.setup_mudata(paired, modalities={"rna_layer": "rna", "atac_layer": "atac"})
    model = scvi.model.MULTIVI(paired)
    if own_defaults:
        # What a user gets from `model.train()`: up to 500 epochs, early stopping on 10 %.
        kw = {"max_epochs": 1} if args.quick else {}
        model.train(accelerator="cpu", enable_progress_bar=False, **kw)
    else:
        model.train(
            max_epochs=args.multivi_epochs,
            accelerator="cpu",
            enable_progress_bar=False,
            early_stopping=False,
            train_size=1.0,
        )
    z_r = model.get_latent_representation(modality="expression")
    z_a = model.get_latent_representation(modality="accessibility")
    out = scores(test, z_r, z_a, key)
    out["epochs"] = int(model.trainer.current_epoch)
    return out


RUNNERS = {
    "conaae": run_conaae,
    "multivi": run_multivi,
    "multivi_default": partial(run_multivi, own_defaults=True),
    "gw_ot": run_gw_ot,
    "pca": run_pca,
}


def run_dataset(task: tuple[str, int, argparse.Namespace]) -> list[dict]:
    """Every method on one dataset and seed, one after the other (times and memory compare)."""
    name, seed, args = task
    mdata = common.load_dataset(name, args.data_dir, n_cells=args.sim_cells)
    key = common.LABEL_KEYS[name]
    results = []
    for method in args.methods:
        before, t0 = common.peak_rss_mb(), time.perf_counter()
        row = {
            "dataset": name,
            "seed": seed,
            "method": method,
            "pairing": PAIRING[method],
            "protocol": PROTOCOL[method],
        }
        try:
            row.update(RUNNERS[method](mdata, key, seed, args))
        except Exception as err:  # report and go on: one failing peer must not hide others
            row["error"] = f"{type(err).__name__}: {err}"
            traceback.print_exc()
        row["wall_s"] = time.perf_counter() - t0
        row["peak_rss_mb"] = common.peak_rss_mb()
        row["peak_rss_increase_mb"] = common.peak_rss_mb() - before
        results.append(row)
        print(f"{name} {method}: {row.get('error') or 'ok'} ({row['wall_s']:.1f} s)", flush=True)
    return results


def _row(r: dict, several: bool) -> list[str]:
    first = [r["dataset"], *([str(r["seed"])] if several else []), r["method"]]
    first += [r["pairing"], r["protocol"]]
    if "error" in r:
        return [*first, "ERROR: " + r["error"][:80], "", "", "", f"{r['wall_s']:.0f}", ""]
    pct = lambda v: common.fmt(v, percent=True)  # noqa: E731
    return [
        *first,
        pct(r["recall@10_l1"]),
        pct(r["recall@50_l1"]),
        f"{r['foscttm']:.3f}",
        pct(r.get("label_transfer_acc")),
        f"{r['wall_s']:.1f}",
        f"{r['peak_rss_mb']:.0f} (+{r['peak_rss_increase_mb']:.0f})",
    ]


def _verdicts(results: list[dict], args: argparse.Namespace, several: bool) -> list[str]:
    """Con-AAE against each peer, per dataset (and seed)."""
    verdict = []
    for name in args.datasets:
        for seed in common.seed_range(args):
            by = {
                r["method"]: r
                for r in results
                if r["dataset"] == name and r["seed"] == seed and "error" not in r
            }
            if "conaae" not in by:
                continue
            c = by["conaae"]
            where = f"{name}, seed {seed}" if several else name
            for m in ("gw_ot", "pca"):
                if m in by:
                    ahead = (
                        c["foscttm"] < by[m]["foscttm"]
                        and c["recall@50_l1"] > by[m]["recall@50_l1"]
                    )
                    verdict.append(
                        f"{where}: Con-AAE {'ahead of' if ahead else 'NOT ahead of'} {m} "
                        "(FOSCTTM and recall@50)"
                    )
            for m, what in (
                ("multivi_default", "MultiVI with its train() defaults"),
                ("multivi", f"MultiVI cut to {args.multivi_epochs} epochs"),
            ):
                if m in by:
                    faster = c["wall_s"] < by[m]["wall_s"]
                    verdict.append(
                        f"{where}: Con-AAE {'faster' if faster else 'slower'} than {what} "
                        f"({c['wall_s']:.0f} s vs {by[m]['wall_s']:.0f} s, "
                        f"{by[m]['epochs']} epochs)"
                    )
    return verdict


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["sci_car", "snare", "simulated"],
        choices=list(common.LABEL_KEYS),
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--dim", type=int, default=30, help="PCA dimension (GW-OT, PCA)")
    parser.add_argument("--gw-k", type=int, default=10, help="kNN graph of GW-OT")
    parser.add_argument("--gw-epsilon", type=float, default=5e-3)
    parser.add_argument("--gw-iter", type=int, default=100)
    parser.add_argument("--multivi-epochs", type=int, default=50)
    parser.add_argument("--sim-cells", type=int, default=1200)
    common.add_standard_arguments(parser, quick="smoke test (seconds)", data_dir=True)
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets, args.sim_cells = ["simulated"], 200
        args.multivi_epochs, args.gw_iter = 1, 5
    common.quiet()
    tasks = [(name, seed, args) for name in args.datasets for seed in common.seed_range(args)]
    per_task = common.run_tasks(run_dataset, tasks, jobs=args.jobs, threads=args.threads)
    results = [r for runs in per_task for r in runs]

    several = args.seeds > 1
    header = ["dataset", *(["seed"] if several else []), "method", "pairing", "protocol"]
    header += ["recall@10 l1", "recall@50 l1", "FOSCTTM", "label transfer (5-NN)", "wall s"]
    header += ["peak RSS MB (+increase)"]
    table = common.markdown_table(header, [_row(r, several) for r in results])
    verdict = _verdicts(results, args, several)
    seeds = f"Seeds 0-{args.seeds - 1}" if several else "Seed 0"
    note = (
        f"{seeds}; CPU only ({os.cpu_count()} cores), {common.threads_note(args)}; "
        f"load average (1, 5, 15 min) at the end: {common.load_average()}; wall times are noisy "
        "when other jobs share the machine. Transductive rows (MultiVI, GW-OT) are "
        "scored on all cells and are not directly comparable with held-out rows (chance "
        "recall@k = k / n_eval differs). MultiVI uses the pairing; the others never do. "
        f"`multivi` ran {args.multivi_epochs} epochs without early stopping; `multivi_default` "
        "is `MULTIVI.train()` with its defaults (up to 500 epochs, early stopping on a 10 % "
        "validation split), as a user would run it. No GPU available."
        + (" QUICK MODE: smoke test, numbers meaningless." if args.quick else "")
    )
    body = table + "\n\n" + "\n".join(f"- {v}" for v in verdict)
    payload = {"results": results, "note": note}
    common.publish(args, "peers", "Peers (benchmarks/peers.py)", note, body, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
