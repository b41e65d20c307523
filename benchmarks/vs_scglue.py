"""Con-AAE beside scGLUE on unpaired RNA + ATAC with peak coordinates, ATAC unlabelled.

scGLUE (Cao & Gao, Nat. Biotechnol. 2022) is what our users would otherwise pick for this
job. Both methods get the same cells, the same split and the same metrics:

- data (``--dataset``): ``bmmc``, the BMMC multiome starter (``../shared/data``; 10x
  Multiome, 21 cell types, peak coordinates on GRCh38, the hg38 annotation), all 500 cells of
  both modalities; ``pbmc``, muon's PBMC multiome test data (the 981 cells with counts, 45
  marker genes, the 174 peaks near them; no cell types, so the labels are Leiden clusters of
  the RNA, as a user annotates a reference: ``_common.rna_clusters``); or ``simulated``,
  ``ca.datasets.simulate_wide`` (``--cells``, ``--genes``, ``--peaks``; 8 types) with its
  synthetic genome as the annotation, drawn anew per seed.
  **Unpaired** (each modality in an order of its own, nothing pairs them), RNA labels
  known, ATAC labels hidden;
- scGLUE as its tutorial runs it: counts in a ``counts`` layer, RNA normalised, log1p, scaled,
  PCA; ATAC LSI; a guidance graph of gene body + 2 kb promoter overlaps (weight 1, sign 1,
  reverse edges and self-loops, as ``scglue.genomics.rna_anchored_guidance_graph`` builds it;
  that function needs the ``bedtools`` binary, so the same overlaps come from
  ``ca.pp.link_peaks_to_genes``), negative binomial likelihoods, ``fit_SCGLUE``, then
  ``encode_data``; ATAC labels by a 15-nearest-neighbour vote of the RNA cells in its
  embedding (as ``scglue``'s label transfer does);
- DIAGVI (``scvi.external.DIAGVI``, scvi-tools >= 1.4.3; GLUE-inspired, built for RNA +
  spatial or protein data) as its docstring sets it up: raw counts, negative binomial
  likelihoods for both modalities, RNA labels (its semi-supervised classifier), a guidance
  graph of the same gene-peak overlaps (both directions, self-loops), default model and
  training (its early stopping included), ``get_latent_representation`` and
  ``predict_celltype`` for the ATAC labels. It needs ``torch_geometric`` and ``geomloss``
  (in the ``benchmark`` extra on Python >= 3.12; scvi-tools 1.4.2, the newest for Python 3.11,
  has no DIAGVI);
- Con-AAE as a user runs it: ``ConAAE.setup_mudata`` (with ``gene_links`` for the links
  prior and its anchors), default model and training, ``predict`` for the ATAC labels;
  ``--methods conaae_links_plain``: the links default before it scaled the ATAC counts per
  cell and turned the ``depth_invariance`` loss on (``input_transform="log1p"``, weight 0),
  the base of the diagnostics below, which pin it;
- scored: ATAC label accuracy, FOSCTTM on the true pairs (evaluation only; chance 0.5),
  wall time of set-up + training + embedding, and peak memory of the process (RSS).
  For Con-AAE, a second table: the share and accuracy of the prior's pseudo-labels, the
  model's accuracy on those cells and on the rest, and how many wrong pseudo-labels it keeps.
- diagnostics, only when asked: ``--methods conaae_links_contrastive``, Con-AAE with links
  whose pseudo-labels are held by the contrastive triplet (``pseudo_label_loss="contrastive"``,
  the default before ``"auto"`` gave them to the classifier where the prior is the links'),
  the setting of the release, depth and thinning rows; ``--methods conaae_links_release``,
  Con-AAE with links whose pseudo-labels train for the first half of the epochs only
  (``pseudo_label_epochs=0.5``), to see whether the wrong ones it keeps are held by training
  on them to the end; and ``--methods conaae_links_depth``, Con-AAE with links on counts
  scaled per cell to the median total (the copy of the data given to the model;
  ``input_transform="log1p"``), to see what sequencing depth costs Con-AAE, whose inputs
  are log1p counts per feature; and
  ``--methods conaae_links_thinning``, Con-AAE with links and the ``depth_invariance`` loss
  (weight 10, off by default): the data unchanged, the latents of binomially thinned counts
  pulled onto those of the full counts; and ``--methods conaae_links_no_contrastive``,
  Con-AAE with links and the contrastive triplet's weight set to 0; and ``--methods
  conaae_links_depth_classifier``, the default (the classifier holds the pseudo-labels) on
  counts scaled per cell to the median depth (as ``conaae_links_depth``); and ``--methods
  conaae_links_normalized``, the default with links and ``input_transform="normalize_log1p"``
  (the model scales each cell's counts to the median total before log1p, in both
  modalities); and ``--methods conaae_links_atac_depth``, the default with links, the ATAC
  counts scaled per cell (``input_transform={"atac": "normalize_log1p"}``) and the
  ``depth_invariance`` loss (weight 10), which holds the latent of a cell's thinned counts to
  that of its full counts.
- for every method, FOSCTTM split by whether the ATAC cell of a pair was labelled right:
  misplacement within populations against placement in a wrong one.

Each run (method and seed) is its own process with ``--threads`` torch threads (one), run one
after the other (``--jobs 1``, the default) so that times compare. scGLUE is not a
dependency: install it into the benchmark environment with ``pip install scglue`` (it needs
Python <= 3.11 here). A peer that cannot run in the environment gets a row saying why; rows
from separate environments join with ``--combine``.

Examples
--------
python benchmarks/vs_scglue.py                      # every method, seeds 0-2, BMMC
python benchmarks/vs_scglue.py --dataset simulated  # the wide simulation
python benchmarks/vs_scglue.py --dataset pbmc       # muon's PBMC test data
python benchmarks/vs_scglue.py --methods conaae --seeds 1
python benchmarks/vs_scglue.py --dataset pbmc --methods conaae_links conaae_links_release
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

METHODS = {
    "conaae": "Con-AAE, default (OT prior)",
    "conaae_links": "Con-AAE, peak-gene links (default: prior, anchors, consistency, ATAC depth)",
    "conaae_links_plain": "Con-AAE, links, log1p ATAC counts, no depth invariance",
    "conaae_links_contrastive": "Con-AAE, links, pseudo-labels held by the triplet",
    "conaae_links_release": "Con-AAE, links, triplet holds, pseudo-labels half of training",
    "conaae_links_depth": "Con-AAE, links, triplet holds, counts scaled to the median depth",
    "conaae_links_thinning": "Con-AAE, links, triplet holds, depth invariance",
    "conaae_links_no_contrastive": "Con-AAE, links, without the contrastive term",
    "conaae_links_depth_classifier": "Con-AAE, links, median depth, classifier holds",
    "conaae_links_normalized": "Con-AAE, links, counts normalised per cell (normalize_log1p)",
    "conaae_links_atac_depth": "Con-AAE, links, ATAC normalised per cell, depth invariance",
    "scglue": "scGLUE",
    "diagvi": "DIAGVI (scvi-tools)",
}
#: Run unless --methods says otherwise (the release, depth, thinning and no-contrastive
#: variants are diagnostics).
DEFAULT_METHODS = ("conaae", "conaae_links", "scglue", "diagvi")
#: The links default before ATAC scaling and depth invariance joined it (the diagnostics'
#: base: they were measured on it).
LINKS_PLAIN = {"links": True, **common.LINKS_PLAIN}
#: The diagnostics below were measured before ``pseudo_label_loss="auto"`` made the classifier
#: hold the links prior's pseudo-labels; they keep the triplet, so their rows stay comparable.
TRIPLET_HOLDS = {**LINKS_PLAIN, "pseudo_label_loss": "contrastive"}
#: Keyword arguments of :func:`run_conaae` for each Con-AAE method (beyond ``links`` and
#: ``depth``: those of :class:`~conaae_scverse.ConAAE`).
CONAAE_SETTINGS = {
    "conaae": {"links": False},
    "conaae_links": {"links": True},
    "conaae_links_plain": LINKS_PLAIN,
    "conaae_links_contrastive": TRIPLET_HOLDS,
    "conaae_links_release": {**TRIPLET_HOLDS, "pseudo_label_epochs": 0.5},
    "conaae_links_depth": {**TRIPLET_HOLDS, "depth": True},
    "conaae_links_thinning": {**TRIPLET_HOLDS, **common.DEPTH_INVARIANCE},
    "conaae_links_no_contrastive": {
        **LINKS_PLAIN,
        "loss_weights": {"contrastive": 0.0, "depth_invariance": 0.0},
    },
    "conaae_links_depth_classifier": {
        **LINKS_PLAIN,
        "depth": True,
        "pseudo_label_loss": "classifier",
    },
    "conaae_links_normalized": {
        **LINKS_PLAIN,
        "input_transform": "normalize_log1p",
    },
    "conaae_links_atac_depth": {"links": True, **common.ATAC_DEPTH},
}
LABEL_KEY = "cell_type"


def _unpaired(seed: int, args):
    """The data (ATAC rows in an order of their own, names that pair nothing), ATAC labels
    hidden, and the truth."""
    if args.dataset in ("bmmc", "pbmc"):
        mdata = common.load_dataset(args.dataset, args.data_dir, random_state=seed)
    else:
        import conaae_scverse as ca

        mdata = ca.datasets.simulate_wide(
            args.cells, n_genes=args.genes, n_peaks=args.peaks, random_state=seed
        )
    atac = mdata.mod["atac"].obs
    truth = atac[LABEL_KEY].astype(str).to_numpy()
    atac[LABEL_KEY] = atac[LABEL_KEY].where(np.zeros(len(atac), dtype=bool))
    return mdata, truth


def _links(mdata, args):
    """Peak-gene links from coordinates: the hg38 annotation, or the simulation's genome."""
    if args.dataset in ("bmmc", "pbmc"):
        return common.gene_links(mdata, args.data_dir)
    from conaae_scverse import pp

    rna = mdata.mod["rna"]
    return pp.link_peaks_to_genes(mdata.mod["atac"], rna.var, genes=rna.var_names)


def run_conaae(
    seed: int,
    args,
    *,
    links: bool,
    depth: bool = False,
    **model_kwargs,
) -> dict:
    from conaae_scverse import ConAAE

    mdata, truth = _unpaired(seed, args)
    start = time.perf_counter()
    atac_counts = mdata.mod["atac"].X  # the ATAC-alone columns read the raw counts
    if depth:
        common.scale_to_median_depth(mdata)
    gene_links = _links(mdata, args) if links else None
    ConAAE.setup_mudata(mdata, labels_key=LABEL_KEY, gene_links=gene_links)
    if depth:  # scaled counts are not integers: "auto" would take them for normalised values
        model_kwargs = {**model_kwargs, "input_transform": "log1p"}
    model = ConAAE(mdata, seed=seed, label_prior="links" if links else "auto", **model_kwargs)
    model.train(
        2 if args.quick else None,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    predicted = model.predict(modality="atac")
    z_rna = model.get_latent_representation(modality="rna")
    z_atac = model.get_latent_representation(modality="atac")
    seconds = time.perf_counter() - start
    result = _score(mdata, z_rna, z_atac, predicted, truth, seconds, atac_counts=atac_counts)
    return {**result, **_pseudo_label_report(model, predicted, truth, atac_counts, seed)}


def _pseudo_label_report(model, predicted, truth, atac_matrix, seed: int) -> dict:
    """How the ATAC predictions relate to the prior's pseudo-labels (what bounds accuracy).

    The cells whose prior probability reaches ``prior_confidence`` train as if labelled;
    reported: their share and accuracy, the model's accuracy on them and on the other
    cells, and the share of wrong pseudo-labels that the model's prediction keeps. Beside
    them, how often ATAC alone reads the true label of the cells with a wrong pseudo-label
    and of the cells the model labels wrong: the supervised classifier of
    ``label_ceiling.py``, given every true ATAC label, each cell predicted by the fold that
    left it out (after the timed part of the run).
    """
    from label_ceiling import cross_validated_labels

    prior = model.label_prior_
    if prior is None:
        return {}
    # The same rule that gave the pseudo-labels in training.
    codes = prior.pseudo_labels(model.hyperparameters_.prior_confidence)
    confident = codes >= 0
    pseudo = np.asarray(model.label_categories_)[prior.probabilities.argmax(axis=1)]
    predicted, truth = np.asarray(predicted, dtype=str), np.asarray(truth, dtype=str)
    wrong = confident & (pseudo != truth)

    def share(mask: np.ndarray, hits: np.ndarray) -> float | None:
        return float(np.mean(hits[mask])) if mask.any() else None

    atac_alone = cross_validated_labels(atac_matrix, truth, folds=5, seed=seed)
    return {
        "pseudo_share": float(np.mean(confident)),
        "pseudo_accuracy": share(confident, pseudo == truth),
        "accuracy_pseudo_labelled": share(confident, predicted == truth),
        "accuracy_rest": share(~confident, predicted == truth),
        "wrong_pseudo_kept": share(wrong, predicted == pseudo),
        "atac_alone_on_wrong_pseudo": share(wrong, atac_alone == truth),
        "atac_alone_on_model_errors": share(predicted != truth, atac_alone == truth),
    }


def _lsi(counts, n_components: int, seed: int) -> np.ndarray:
    """scGLUE's LSI: TF-IDF, l1 row normalisation, log1p(1e4 x), SVD, rows standardised."""
    import anndata as ad
    import scglue

    holder = ad.AnnData(X=counts)
    scglue.data.lsi(holder, n_components=n_components, n_iter=15, random_state=seed)
    return holder.obsm["X_lsi"]


def run_scglue(seed: int, args) -> dict:
    import networkx as nx
    import scanpy as sc
    import scglue
    from sklearn.neighbors import KNeighborsClassifier

    mdata, truth = _unpaired(seed, args)
    start = time.perf_counter()
    links = _links(mdata, args)
    rna = mdata.mod["rna"].copy()
    atac = mdata.mod["atac"].copy()
    rna.layers["counts"] = rna.X.copy()  # both datasets give raw counts in X
    atac.layers["counts"] = atac.X.copy()
    # every feature: the datasets are already narrow (HVG selection is for 20k genes)
    rna.var["highly_variable"] = True
    atac.var["highly_variable"] = True
    prepared = rna.copy()
    n_comps = min(50, rna.n_obs - 1, rna.n_vars - 1)
    with common.torch_threads_kept():
        sc.pp.normalize_total(prepared)
        sc.pp.log1p(prepared)
        sc.pp.scale(prepared)
        sc.tl.pca(prepared, n_comps=n_comps, random_state=seed)
    rna.obsm["X_pca"] = prepared.obsm["X_pca"]
    atac.obsm["X_lsi"] = _lsi(atac.X, n_comps, seed)

    graph = nx.MultiDiGraph()
    coo = links.X.tocoo()
    for peak_row, gene_col in zip(coo.row, coo.col, strict=True):
        peak, gene = links.obs_names[peak_row], links.var_names[gene_col]
        graph.add_edge(gene, peak, weight=1.0, sign=1, type="fwd")
        graph.add_edge(peak, gene, weight=1.0, sign=1, type="rev")
    for feature in [*rna.var_names, *atac.var_names]:
        graph.add_edge(feature, feature, weight=1.0, sign=1, type="loop")
    scglue.graph.check_graph(graph, [rna, atac])

    scglue.models.configure_dataset(
        rna, "NB", use_highly_variable=True, use_layer="counts", use_rep="X_pca"
    )
    scglue.models.configure_dataset(
        atac, "NB", use_highly_variable=True, use_layer="counts", use_rep="X_lsi"
    )
    scglue.config.CPU_ONLY = True
    fit_kws = {"directory": tempfile.mkdtemp(prefix="scglue_")}
    if args.quick:
        fit_kws["max_epochs"] = 20  # fewer can leave NaN in its embedding
    glue = scglue.models.fit_SCGLUE(
        {"rna": rna, "atac": atac},
        graph,
        init_kws={"random_seed": seed},
        fit_kws=fit_kws,
    )
    z_rna = glue.encode_data("rna", rna)
    z_atac = glue.encode_data("atac", atac)
    vote = KNeighborsClassifier(n_neighbors=15).fit(z_rna, rna.obs[LABEL_KEY].astype(str))
    predicted = vote.predict(z_atac)
    seconds = time.perf_counter() - start
    return _score(mdata, z_rna, z_atac, predicted, truth, seconds)


def _guidance_graph(links, rna_names, n_atac: int):
    """DIAGVI's guidance graph: gene <-> peak edges of the links, both ways, and self-loops.

    Built directly rather than with ``DIAGVI.construct_custom_guidance_graph``, whose node
    features are a dense identity matrix (features squared: 12 GB for 55k features).
    """
    import torch
    from torch_geometric.data import Data

    n_rna = len(rna_names)
    coo = links.X.tocoo()
    gene_rows = rna_names.get_indexer(links.var_names[coo.col])
    known = gene_rows >= 0
    genes, peaks = gene_rows[known], n_rna + coo.row[known]
    nodes = np.arange(n_rna + n_atac)
    edges = np.vstack(
        [np.concatenate([genes, peaks, nodes]), np.concatenate([peaks, genes, nodes])]
    )
    ones = torch.ones(edges.shape[1])
    return Data(
        edge_index=torch.as_tensor(edges, dtype=torch.long),
        edge_weight=ones,
        edge_sign=ones.clone(),
        rna_indices=torch.arange(n_rna),
        atac_indices=torch.arange(n_rna, n_rna + n_atac),
        num_nodes=n_rna + n_atac,
    )


def run_diagvi(seed: int, args) -> dict:
    import scvi
    from scvi.external import DIAGVI

    mdata, truth = _unpaired(seed, args)
    start = time.perf_counter()
    links = _links(mdata, args)
    rna = mdata.mod["rna"].copy()  # every dataset gives raw counts in X
    atac = mdata.mod["atac"].copy()
    scvi.settings.seed = seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # it moves to scviva-tools in 1.6
        DIAGVI.setup_anndata(rna, labels_key=LABEL_KEY, likelihood="nb")
        DIAGVI.setup_anndata(atac, likelihood="nb")
        graph = _guidance_graph(links, rna.var_names, atac.n_vars)
        model = DIAGVI({"rna": rna, "atac": atac}, guidance_graph=graph)
    # its train() always shows a progress bar (it passes enable_progress_bar itself)
    model.train(max_epochs=2 if args.quick else None, accelerator="cpu")
    latent = model.get_latent_representation()
    predicted = model.predict_celltype(labeled_modality="rna", target_modality="atac")
    seconds = time.perf_counter() - start
    return _score(mdata, latent["rna"], latent["atac"], predicted["predictions"], truth, seconds)


#: ATAC cells are split into this many equal groups by their total counts.
DEPTH_GROUPS = 5


def _accuracy_by_depth(right: np.ndarray, atac_counts) -> list[float]:
    """Accuracy in each fifth of the ATAC cells by total counts, shallowest first.

    Ties in depth go by row order (a stable sort), so the groups are equal in size.
    """
    depth = np.asarray(atac_counts.sum(axis=1)).ravel()
    groups = np.array_split(np.argsort(depth, kind="stable"), DEPTH_GROUPS)
    return [float(np.mean(right[rows])) for rows in groups]


def _score(mdata, z_rna, z_atac, predicted, truth, seconds: float, *, atac_counts=None) -> dict:
    """Scores of one run; ``atac_counts``: the ATAC counts before any scaling (default: X)."""
    from conaae_scverse import metrics

    peak_mib = common.peak_rss_mb()  # before scoring
    right = np.asarray(predicted, dtype=str) == truth
    types = {label: truth == label for label in np.unique(truth)}
    # Each true pair's FOSCTTM (both directions averaged; their mean over pairs is FOSCTTM),
    # split by whether the ATAC cell was labelled right: error within populations or across.
    rna_rows, atac_rows = metrics.pairs_from_mudata(mdata)
    per_pair = np.mean(metrics.foscttm_per_cell(z_rna[rna_rows], z_atac[atac_rows]), axis=0)
    pair_right = right[atac_rows]
    share_from_wrong = per_pair[~pair_right].sum() / max(per_pair.sum(), 1e-12)
    return {
        "accuracy": float(np.mean(right)),
        "foscttm": float(np.mean(per_pair)),  # what score_alignment gives, computed once
        "foscttm_labelled_right": _mean_or_none(per_pair[pair_right]),
        "foscttm_labelled_wrong": _mean_or_none(per_pair[~pair_right]),
        "foscttm_share_from_wrong": float(share_from_wrong),
        "seconds": seconds,
        "peak_mib": peak_mib,
        "accuracy_by_depth": _accuracy_by_depth(
            right, mdata.mod["atac"].X if atac_counts is None else atac_counts
        ),
        "recall_per_type": {
            label: [int(cells.sum()), float(np.mean(right[cells]))]
            for label, cells in types.items()
        },
    }


def _mean_or_none(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _not_runnable(method: str) -> str | None:
    """Why a peer cannot run in this environment (``None``: it can)."""
    import importlib.util

    if method == "scglue" and importlib.util.find_spec("scglue") is None:
        return "not installed: pip install scglue"
    if method == "diagvi":
        import scvi

        if not hasattr(scvi.external, "DIAGVI"):
            return f"scvi-tools {scvi.__version__} has no DIAGVI (it came in 1.4.3)"
        needed = [m for m in ("torch_geometric", "geomloss") if not importlib.util.find_spec(m)]
        if needed:
            return f"not installed: pip install {' '.join(needed)}"
    return None


def one(args) -> int:
    """Run one method and seed in this process; print its result as JSON."""
    method, seed = args.one[0], int(args.one[1])
    common.quiet()
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(args.threads)
    if method == "scglue":
        result = run_scglue(seed, args)
    elif method == "diagvi":
        result = run_diagvi(seed, args)
    else:
        result = run_conaae(seed, args, **CONAAE_SETTINGS[method])
    print("RESULT " + json.dumps({"method": method, "seed": seed, **result}))
    return 0


def launch(task: tuple[str, int, argparse.Namespace]) -> dict:
    """Run one method and seed in a fresh process (its own peak memory); return its result."""
    method, seed, args = task
    command = [sys.executable, __file__, "--one", method, str(seed)]
    command += ["--threads", str(args.threads), "--dataset", args.dataset]
    command += ["--cells", str(args.cells), "--genes", str(args.genes), "--peaks", str(args.peaks)]
    if args.data_dir:
        command += ["--data-dir", str(args.data_dir)]
    if args.quick:
        command.append("--quick")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{method} seed {seed} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def publish(
    results: list[dict], args, *, combined: list[str] | None = None, cpu: str | None = None
) -> None:
    """Write the tables; ``combined``: the JSON files read, ``cpu``: their threads and jobs."""
    rows = []
    for method, name in METHODS.items():
        runs = sorted((r for r in results if r["method"] == method), key=lambda r: r["seed"])
        if not runs:
            continue
        if "error" in runs[0]:
            rows.append([name, "-", runs[0]["error"], "-", "-", "-"])
            continue
        rows.append(
            [
                name,
                " ".join(str(r["seed"]) for r in runs),
                " ".join(f"{r['accuracy']:.2f}" for r in runs),
                " ".join(f"{r['foscttm']:.3f}" for r in runs),
                " ".join(f"{r['seconds']:.0f}" for r in runs),
                f"{max(r['peak_mib'] for r in runs):.0f}",
            ]
        )
    table = common.markdown_table(
        [
            "method",
            "seeds",
            "ATAC label accuracy per seed",
            "FOSCTTM per seed",
            "seconds per seed",
            "peak MiB",
        ],
        rows,
    )
    table += _recall_table(results)
    table += _depth_table(results)
    table += _foscttm_table(results)
    table += _bound_table(results)
    if args.dataset == "bmmc":
        data = "BMMC multiome starter, all 500 cells"
        ceiling = " ATAC alone predicts 32 % of these labels (label_ceiling.py, held-out donor)."
    elif args.dataset == "pbmc":
        data = (
            "muon's PBMC multiome test data, 981 cells with counts in both modalities "
            "(45 marker genes, 174 peaks), "
            "labels: Leiden clusters of the RNA (common.rna_clusters), the truth of each ATAC "
            "profile its cell's RNA cluster"
        )
        ceiling = " ATAC alone predicts 81 % of these labels (label_ceiling.py)."
    else:
        data = (
            f"simulate_wide({args.cells}, n_genes={args.genes}, n_peaks={args.peaks}, "
            "random_state=seed), links from its synthetic genome (gene body + 2 kb promoter)"
        )
        ceiling = ""
    seeds = (
        f"seeds {args.first_seed}-{args.first_seed + args.seeds - 1}"
        + (
            f" (scGLUE: the first {args.scglue_seeds})"
            if args.scglue_seeds is not None and args.scglue_seeds < args.seeds
            else ""
        )
        if combined is None
        else "rows combined from the runs in " + ", ".join(f"`{f}`" for f in combined)
    )
    note = (
        f"{data}, unpaired (each modality in an order of its own), "
        f"RNA labelled, ATAC labels hidden; {seeds}; CPU, "
        f"{cpu or common.threads_note(args) + (', one run at a time' if args.jobs == 1 else '')}; "
        "seconds: set-up, training and embedding; peak MiB: the run's "
        "process (RSS)."
        + ceiling
        + (" QUICK MODE: smoke test, numbers meaningless." if args.quick else "")
    )
    title = "Con-AAE beside scGLUE (benchmarks/vs_scglue.py)"
    name = "vs_scglue" if args.dataset == "bmmc" else f"vs_scglue_{args.dataset}"
    common.publish(args, name, title, note, table, {"results": results})


def _runs_with(results: list[dict], key: str) -> list[dict]:
    """The runs that recorded ``key`` (runs made before it lack it), by method and seed."""
    return sorted((r for r in results if key in r), key=lambda r: (r["method"], r["seed"]))


def _recall_table(results: list[dict]) -> str:
    """ATAC label recall of each true type, per method and seed: where accuracy is lost."""
    runs = _runs_with(results, "recall_per_type")
    if not runs:
        return ""
    seeds = sorted({r["seed"] for r in runs})
    # Cells of each type in each seed's data (the simulation draws its types anew per seed).
    sizes = {}
    for r in runs:
        for label, (n, _) in r["recall_per_type"].items():
            sizes.setdefault(label, {})[r["seed"]] = n
    methods = [m for m in METHODS if any(r["method"] == m for r in runs)]
    rows = []
    for label in sorted(sizes, key=lambda lab: (-max(sizes[lab].values()), lab)):
        counts = [sizes[label].get(seed) for seed in seeds]
        same = len(set(counts)) == 1  # real data: the same cells in every seed
        per_seed = " ".join("-" if n is None else str(n) for n in counts)
        row = [label, str(counts[0]) if same else per_seed]
        for method in methods:
            recalls = [
                f"{r['recall_per_type'][label][1]:.2f}" if label in r["recall_per_type"] else "-"
                for r in runs
                if r["method"] == method
            ]
            row.append(" ".join(recalls))
        rows.append(row)
    intro = (
        "\n\nATAC label recall per true type: the share of a type's ATAC cells given its "
        f"label, per seed ({' '.join(map(str, seeds))}); cells: the type's ATAC cells (per "
        "seed where the seeds' data differ); largest types first. Runs made before this "
        "table lack it and are left out here.\n\n"
    )
    return intro + common.markdown_table(["type", "cells", *(METHODS[m] for m in methods)], rows)


def _depth_table(results: list[dict]) -> str:
    """ATAC label accuracy per fifth of the ATAC cells by depth, per method and seed."""
    runs = _runs_with(results, "accuracy_by_depth")
    if not runs:
        return ""
    rows = [
        [
            METHODS[r["method"]],
            str(r["seed"]),
            f"{r['accuracy']:.3f}",
            *(f"{value:.2f}" for value in r["accuracy_by_depth"]),
        ]
        for r in runs
    ]
    fifths = ("shallowest", "2nd", "3rd", "4th", "deepest")
    header = ["method", "seed", "all", *(f"{fifth} fifth" for fifth in fifths)]
    intro = (
        "\n\nATAC label accuracy by sequencing depth: the ATAC cells split into five equal "
        "groups by their total counts (before any scaling), shallowest first. Runs made "
        "before these columns lack them and are left out here.\n\n"
    )
    return intro + common.markdown_table(header, rows)


def _foscttm_table(results: list[dict]) -> str:
    """FOSCTTM of the pairs whose ATAC cell was labelled right and of the others."""
    runs = _runs_with(results, "foscttm_labelled_right")
    if not runs:
        return ""
    rows = [
        [
            METHODS[r["method"]],
            str(r["seed"]),
            f"{r['foscttm']:.3f}",
            common.fmt(r["foscttm_labelled_right"]),
            common.fmt(r["foscttm_labelled_wrong"]),
            f"{r['foscttm_share_from_wrong']:.2f}",
        ]
        for r in runs
    ]
    header = [
        "method",
        "seed",
        "FOSCTTM",
        "FOSCTTM, ATAC labelled right",
        "FOSCTTM, ATAC labelled wrong",
        "share of FOSCTTM from the wrong",
    ]
    intro = (
        "\n\nWhere FOSCTTM comes from: each true pair's FOSCTTM (both directions averaged), "
        "averaged over the pairs whose ATAC cell got its true label and over the others. "
        "Error among the rightly labelled is misplacement within a population; runs made "
        "before these columns lack them and are left out here.\n\n"
    )
    return intro + common.markdown_table(header, rows)


def _bound_table(results: list[dict]) -> str:
    """Con-AAE rows: accuracy on the cells with a pseudo-label and on the rest."""
    runs = _runs_with(results, "pseudo_share")
    if not runs:
        return ""
    rows = [
        [
            METHODS[r["method"]],
            str(r["seed"]),
            f"{r['pseudo_share']:.2f}",
            *(
                common.fmt(r.get(key))  # runs made before the ATAC-alone columns lack them
                for key in (
                    "pseudo_accuracy",
                    "accuracy_pseudo_labelled",
                    "accuracy_rest",
                    "wrong_pseudo_kept",
                    "atac_alone_on_wrong_pseudo",
                    "accuracy",
                    "atac_alone_on_model_errors",
                )
            ),
        ]
        for r in runs
    ]
    header = [
        "method",
        "seed",
        "share of ATAC cells with a pseudo-label",
        "pseudo-label accuracy",
        "model accuracy on them",
        "model accuracy on the rest",
        "wrong pseudo-labels kept",
        "ATAC alone right on the wrong pseudo-labels",
        "model accuracy, all",
        "ATAC alone right on the model's errors",
    ]
    intro = (
        "\n\nCon-AAE's pseudo-labels: the ATAC cells whose prior probability reaches "
        "`prior_confidence` train as if labelled; how far the model's predictions follow "
        "them, right or wrong (`ConAAE.label_prior_`). ATAC alone: the supervised classifier "
        "of `label_ceiling.py`, given every true ATAC label (5-fold cross-validation): how "
        "often the ATAC profile alone tells the true label of the cells with a wrong "
        "pseudo-label, and of the cells the model labels wrong (n/a: no runs of these "
        "columns, or no such cells).\n\n"
    )
    return intro + common.markdown_table(header, rows)


def combine(args) -> int:
    """Publish the results of earlier runs' JSON files as one table."""
    by_run, cpu = {}, []
    for path in args.combine:
        payload = json.loads(Path(path).read_text())
        for result in payload["results"]:
            by_run[result["method"], result["seed"]] = result
        if "args" in payload:  # how that run shared the cores
            run = argparse.Namespace(**payload["args"])
            cpu.append(f"{common.threads_note(run)} in `{Path(path).name}`")
    publish(list(by_run.values()), args, combined=args.combine, cpu=", ".join(cpu) or None)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--methods", nargs="+", default=list(DEFAULT_METHODS), choices=list(METHODS)
    )
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "SEED"), help=argparse.SUPPRESS)
    common.add_standard_arguments(
        parser, seeds=3, quick="smoke test: 1 seed, 2 epochs", data_dir=True, first_seed=True
    )
    parser.add_argument("--dataset", choices=("bmmc", "pbmc", "simulated"), default="bmmc")
    parser.add_argument(
        "--scglue-seeds",
        type=int,
        default=None,
        metavar="N",
        help="run scGLUE on the first N seeds only (default: every seed)",
    )
    parser.add_argument("--cells", type=int, default=2000, help="simulated cells per modality")
    parser.add_argument("--genes", type=int, default=2000, help="simulated genes")
    parser.add_argument("--peaks", type=int, default=10_000, help="simulated peaks")
    parser.add_argument(
        "--combine",
        nargs="+",
        metavar="JSON",
        help="run nothing: write the table of the results in these JSON files of earlier runs "
        "(e.g. scGLUE seeds run in another session); later files win for a method and seed",
    )
    args = parser.parse_args(argv)
    if args.one:
        return one(args)
    if args.combine:
        return combine(args)
    if args.quick:
        args.seeds, args.cells, args.genes, args.peaks = 1, 300, 300, 1000
    missing = {}
    tasks = []
    for method in args.methods:
        why = _not_runnable(method)
        if why:
            print(f"{METHODS[method]} cannot run here ({why}): its row is left out.")
            missing[method] = {"method": method, "seed": 0, "error": why}
            continue
        seeds = list(common.seed_range(args))
        if method == "scglue" and args.scglue_seeds is not None:
            seeds = seeds[: args.scglue_seeds]  # its runs take ~30x as long
        tasks += [(method, seed, args) for seed in seeds]

    def report(_, result: dict) -> None:
        print(
            f"  {METHODS[result['method']]} | seed {result['seed']}: accuracy "
            f"{result['accuracy']:.3f}, FOSCTTM {result['foscttm']:.3f}, "
            f"{result['seconds']:.0f} s, {result['peak_mib']:.0f} MiB",
            flush=True,
        )

    # each run limits its own threads in its own process
    ran = common.run_tasks(launch, tasks, jobs=args.jobs, on_result=report)
    results = []
    for method in args.methods:  # in the order asked for
        results += (
            [missing[method]] if method in missing else [r for r in ran if r["method"] == method]
        )
    publish(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
