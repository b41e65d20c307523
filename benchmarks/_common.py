"""Shared helpers of the benchmark scripts: data, held-out splits, evaluation, output.

Honesty rules kept here, so that every script follows them:

- RNA and ATAC cells are never paired implicitly. The known pairing (obs column
  ``true_partner``) is read only to build held-out splits and to score alignments, and is
  given to a model only in anchor mode (``anchor_key="obs_names"``), on training cells.
- In the training MuData the ATAC cells are put in a random order of their own, so that row
  order carries no pairing either.
- Held-out protocol: 20 % of the cells (a random split, seeded per run) are held out; the model
  is trained on the other 80 % and every metric is computed on held-out cells only (recall@k
  over the held-out set, chance k / n_heldout).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import platform
import resource
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT / ".." / "shared" / "data"
DEFAULT_RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
TRUE_PARTNER_KEY = "true_partner"

#: Label column of each dataset.
LABEL_KEYS = {
    "sci_car": "treatment_time",
    "snare": "cell_line",
    "simulated": "batch",
    "bmmc": "cell_type",
    "pbmc": "cell_type",
}
#: Files of the BMMC multiome starter (NeurIPS 2021 challenge) under the data directory.
BMMC_DIR = "bmmc_multiome_openproblems_starter"
BMMC_FILES = {
    "rna": "openproblems_bmmc_multiome_starter.output_rna.h5ad",
    "atac": "openproblems_bmmc_multiome_starter.output_mod2.h5ad",
}
#: Gene annotation of each genome build under the data directory.
ANNOTATIONS = {"hg38": "gene_annotations/hg38/CollapsedGeneBounds.hg38.bed"}
#: muon's PBMC multiome test data (45 marker genes, the 174 peaks within 5 kb of them).
PBMC_FILE = "pbmc_multiome_muon_test/test_rna_atac.h5mu"
#: ConAAE arguments of the ``depth_invariance`` loss at the weight every benchmark uses, and
#: of the setting the README recommends with peak coordinates: that loss with the ATAC counts
#: scaled per cell. One definition, so the benchmarks measure the same setting.
DEPTH_INVARIANCE = {"loss_weights": {"depth_invariance": 10.0}}
ATAC_DEPTH = {"input_transform": {"atac": "normalize_log1p"}, **DEPTH_INVARIANCE}
#: What the links prior ran with before ATAC_DEPTH became its default: log1p counts, no
#: depth invariance. The diagnostics measured on it pin it, so that reruns stay comparable.
LINKS_PLAIN = {"input_transform": "log1p", "loss_weights": {"depth_invariance": 0.0}}


def quiet() -> None:
    """Silence Lightning / scvi-tools chatter so that the printed tables stay readable."""
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "scvi", "conaae_scverse"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``--data-dir`` if given, else ``../shared/data`` relative to the repository root."""
    return Path(data_dir).resolve() if data_dir else DEFAULT_DATA_DIR.resolve()


# ---------------------------------------------------------------------------------- flags
def add_standard_arguments(
    parser: argparse.ArgumentParser,
    *,
    seeds: int = 1,
    threads: int | None = 1,
    quick: str = "smoke test",
    data_dir: bool = False,
    first_seed: bool = False,
) -> argparse.ArgumentParser:
    """Add the flags every benchmark script shares.

    ``--out DIR`` (results folder), ``--seeds N`` (seeds 0 to N-1, or from ``--first-seed``),
    ``--jobs J`` (worker processes), ``--threads T`` (torch threads per job) and ``--quick``;
    with ``data_dir=True`` also ``--data-dir``. Defaults of ``seeds`` and ``threads`` are the
    script's own (``threads=None``: torch's default, every core).
    """
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_RESULTS_DIR,
        metavar="DIR",
        help="results folder (%(default)s)",
    )
    span = "--first-seed .. --first-seed + N - 1" if first_seed else "0 .. N-1"
    parser.add_argument(
        "--seeds", type=int, default=seeds, metavar="N", help=f"run seeds {span} (%(default)s)"
    )
    if first_seed:
        parser.add_argument(
            "--first-seed", type=int, default=0, metavar="S", help="seeds start here"
        )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="J",
        help="runs in parallel worker processes, each with --threads torch threads (1: in this "
        "process)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=threads,
        metavar="T",
        help="torch CPU threads per job (%(default)s" + ("" if threads else ": every core") + ")",
    )
    if data_dir:
        parser.add_argument(
            "--data-dir",
            default=None,
            metavar="DIR",
            help="datasets folder (default: ../shared/data)",
        )
    parser.add_argument("--quick", action="store_true", help=quick)
    return parser


def seed_range(args: argparse.Namespace) -> range:
    """The seeds of ``--seeds`` (and ``--first-seed`` where a script has it)."""
    first = getattr(args, "first_seed", 0)
    return range(first, first + args.seeds)


def single_seed(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The one seed of a timing script, which times one run at a time: ``--first-seed``."""
    if args.seeds != 1:
        parser.error(
            "this script times one seed per call: pass --seeds 1 and choose it with --first-seed"
        )
    return args.first_seed


def threads_note(args: argparse.Namespace) -> str:
    """``--threads`` and ``--jobs`` in words, for a report's note."""
    text = f"{args.threads} torch thread(s)" if args.threads else "torch's default threads"
    return text + (f" in each of {args.jobs} parallel jobs" if args.jobs > 1 else "")


# ---------------------------------------------------------------------------------- runner
def start_worker(threads: int | None) -> None:
    """Quiet logs; torch (and OpenMP / MKL, where not yet loaded) to ``threads`` threads."""
    quiet()
    if threads is None:
        return
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Give torch back its thread count on leaving: for scanpy preprocessing in a run.

    scanpy's ``normalize_total`` (through numba) sets the OpenMP runtime that torch shares to
    every core; a model trained afterwards would use other threads than the run asked for.
    """
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _with_threads(function: Callable[[Any], Any], threads: int | None, task: Any) -> Any:
    """``function(task)`` with torch set to ``threads`` threads again first.

    A library called by an earlier task of the same process can set the OpenMP runtime that
    torch shares back to every core (see :func:`torch_threads_kept`): later tasks would train
    with other threads, so other numbers and times.
    """
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return function(task)


def print_run(task: Sequence[Any], result: Any) -> None:
    """Print a finished run of a ``(config, seed, ...)`` task: an ``on_result`` of run_tasks."""
    print(f"{task[0]}, seed {task[1]}: {result}", flush=True)


def run_tasks(
    function: Callable[[Any], Any],
    tasks: Sequence[Any],
    *,
    jobs: int = 1,
    threads: int | None = None,
    on_result: Callable[[Any, Any], None] | None = None,
) -> list[Any]:
    """``function(task)`` for every task, in this process or in ``jobs`` worker processes.

    Each process (this one when ``jobs <= 1``) limits torch to ``threads`` threads, again
    before every task (:func:`_with_threads`).
    Results come back in task order; ``on_result(task, result)`` is called for each as soon
    as it and every task before it are done (to print progress). With ``jobs > 1``,
    ``function`` and the tasks must pickle: a module-level function and plain values.
    """
    results: list[Any] = []
    each = functools.partial(_with_threads, function, threads)
    if jobs <= 1 or len(tasks) <= 1:
        start_worker(threads)
        for task in tasks:
            results.append(each(task))
            if on_result is not None:
                on_result(task, results[-1])
        return results
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(tasks)), initializer=start_worker, initargs=(threads,)
    ) as pool:
        for task, result in zip(tasks, pool.map(each, tasks), strict=True):
            results.append(result)
            if on_result is not None:
                on_result(task, result)
    return results


# ---------------------------------------------------------------------------------- data
def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    n_cells: int = 1200,
    snr: float | None = None,
    random_state: int = 0,
) -> md.MuData:
    """Load ``"sci_car"``, ``"snare"`` or ``"simulated"`` (the package's loaders)."""
    from conaae_scverse import datasets

    if name == "sci_car":
        return datasets.sci_car_a549(resolve_data_dir(data_dir), download=False)
    if name == "snare":
        return datasets.snare_seq_cell_lines(resolve_data_dir(data_dir), download=False)
    if name == "simulated":
        return datasets.simulate(n_cells, snr=snr, random_state=random_state)
    if name == "bmmc":
        return load_bmmc(data_dir, random_state=random_state)
    if name == "pbmc":
        return load_pbmc(data_dir, random_state=random_state)
    msg = f"Unknown dataset {name!r}; expected one of {sorted(LABEL_KEYS)}."
    raise ValueError(msg)


def load_bmmc(
    data_dir: str | os.PathLike[str] | None = None, *, random_state: int = 0
) -> md.MuData:
    """The BMMC multiome starter as an unpaired-looking MuData of raw counts.

    Cells get modality-prefixed names and the ATAC rows a random order of their own, so that
    nothing pairs them but the ``true_partner`` columns (evaluation only). ``obs`` keeps
    ``cell_type``, ``batch`` (donor) and ``is_train`` (the challenge's split).
    """
    folder = resolve_data_dir(data_dir) / BMMC_DIR
    sources = {mod: ad.read_h5ad(folder / BMMC_FILES[mod]) for mod in ("rna", "atac")}
    for source in sources.values():
        source.X = source.layers["counts"]
        source.obs = source.obs[["cell_type", "batch", "is_train"]]
    return _as_unpaired(sources, "bmmc_multiome_openproblems_starter", random_state)


def _as_unpaired(sources: dict[str, ad.AnnData], name: str, random_state: int) -> md.MuData:
    """Paired modalities (row i = one cell) as an unpaired-looking MuData of float32 counts.

    Cells get modality-prefixed names, the ATAC rows a random order of their own and the
    ``true_partner`` columns (evaluation only); ``obs`` columns are kept.
    """
    from conaae_scverse.datasets._utils import build_mudata

    adatas = {}
    for mod, source in sources.items():
        obs = source.obs.copy()
        obs.index = f"{mod}:" + source.obs_names.astype(str)
        adatas[mod] = ad.AnnData(
            X=source.X.astype(np.float32),
            obs=obs,
            var=pd.DataFrame(index=source.var_names.astype(str)),
        )
    cells = sources["rna"].obs_names.astype(str)
    adatas["rna"].obs[TRUE_PARTNER_KEY] = "atac:" + cells
    adatas["atac"].obs[TRUE_PARTNER_KEY] = "rna:" + cells
    order = np.random.default_rng(random_state).permutation(adatas["atac"].n_obs)
    adatas["atac"] = adatas["atac"][order].copy()
    return build_mudata(adatas["rna"], adatas["atac"], {"name": name, "genome": "hg38"})


def rna_clusters(rna: ad.AnnData, *, resolution: float = 0.3) -> pd.Series:
    """Leiden clusters of RNA counts, named by their most specific gene: a stand-in annotation.

    For data without cell-type labels, as a user annotates a reference: library-size
    normalisation, log1p, 20 principal components, a 15-neighbour graph, Leiden. Fixed seeds,
    so every run scores against the same labels.
    """
    import scanpy as sc

    data = ad.AnnData(X=rna.X.copy(), obs=pd.DataFrame(index=rna.obs_names))
    data.var_names = rna.var_names
    with torch_threads_kept():
        sc.pp.normalize_total(data, target_sum=1e4)
        sc.pp.log1p(data)
        sc.pp.pca(data, n_comps=min(20, data.n_vars - 1), random_state=0)
        sc.pp.neighbors(data, random_state=0)
        sc.tl.leiden(
            data,
            resolution=resolution,
            flavor="igraph",
            n_iterations=2,
            directed=False,
            random_state=0,
        )
    values = data.X.toarray() if hasattr(data.X, "toarray") else np.asarray(data.X)
    clusters = data.obs["leiden"].astype(str)
    means = pd.DataFrame(values, columns=data.var_names).groupby(clusters.to_numpy()).mean()
    specific = means - means.mean(0)  # mean log expression above the clusters' average
    names = {c: f"{specific.loc[c].idxmax()}+ ({c})" for c in means.index}
    return clusters.map(names)


def _read_old_h5mu(path: Path, modalities: Sequence[str]) -> md.MuData:
    """The ``X``, ``obs`` and ``var`` of modalities of an .h5mu, element by element.

    muon's test file predates the encoding attributes on modality groups that mudata 0.4's
    reader needs; its elements carry theirs, so anndata reads each one.
    """
    import h5py

    try:
        from anndata.io import read_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem

    adatas = {}
    with h5py.File(path, "r") as handle:
        for name in modalities:
            group = handle["mod"][name]
            adatas[name] = ad.AnnData(
                **{key: read_elem(group[key]) for key in ("X", "obs", "var")}
            )
    return md.MuData(adatas)


def load_pbmc(
    data_dir: str | os.PathLike[str] | None = None, *, random_state: int = 0
) -> md.MuData:
    """muon's PBMC multiome test data as an unpaired-looking MuData of raw counts.

    1,000 cells, 45 marker genes, the 174 peaks near them (GRCh38); cells without counts in a
    modality are dropped (981 stay). It has no cell types:
    ``cell_type`` holds :func:`rna_clusters` of the RNA (T, NK, B cells, two kinds of
    monocytes at the default resolution), copied to each cell's ATAC profile as the truth.
    Names and row order as in :func:`load_bmmc`.
    """
    source = _read_old_h5mu(resolve_data_dir(data_dir) / PBMC_FILE, ("rna", "atac"))
    if not source.mod["rna"].obs_names.equals(source.mod["atac"].obs_names):
        msg = f"{PBMC_FILE}: the modalities' rows are not the same cells in the same order."
        raise ValueError(msg)
    # Quality control as any user does it: drop cells without counts (19 ATAC profiles);
    # scGLUE's LSI turns them into NaN.
    counted = np.ones(source.n_obs, dtype=bool)
    for adata in source.mod.values():
        counted &= np.asarray(adata.X.sum(axis=1)).ravel() > 0
    sources = {mod: source.mod[mod][counted].copy() for mod in ("rna", "atac")}
    labels = pd.Categorical(rna_clusters(sources["rna"]).to_numpy())
    for adata in sources.values():
        adata.obs = pd.DataFrame({"cell_type": labels}, index=adata.obs_names)
    return _as_unpaired(sources, "pbmc_multiome_muon_test", random_state)


def gene_links(mdata: md.MuData, data_dir: str | os.PathLike[str] | None = None):
    """Peak-gene links of the ATAC peaks (hg38 annotation), for the datasets with coordinates."""
    from conaae_scverse import pp

    annotation = resolve_data_dir(data_dir) / ANNOTATIONS[mdata.uns["dataset"]["genome"]]
    return pp.link_peaks_to_genes(mdata.mod["atac"], annotation, genes=mdata.mod["rna"].var_names)


def scale_to_median_depth(mdata: md.MuData) -> None:
    """Scale each modality's counts per cell to the modality's median total, in place.

    The copy of the data a benchmark gives the model (with ``input_transform="log1p"``:
    scaled counts are not integers), to see what sequencing depth costs it.
    """
    from scipy import sparse

    from conaae_scverse._cell_representation import median_total_factors

    for adata in mdata.mod.values():
        counts = sparse.csr_matrix(adata.X, dtype=np.float32)
        factors = median_total_factors(counts).astype(np.float32)
        adata.X = sparse.csr_matrix(sparse.diags(factors) @ counts)


def partner_index(mdata: md.MuData) -> np.ndarray:
    """For each RNA cell, the row of its true ATAC partner (evaluation only)."""
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    partners = rna.obs[TRUE_PARTNER_KEY].astype(str).to_numpy()
    lookup = pd.Index(atac.obs_names.astype(str))
    idx = lookup.get_indexer(partners)
    if (idx < 0).any():
        msg = f"{int((idx < 0).sum())} RNA cells have no partner among the ATAC cells."
        raise ValueError(msg)
    return idx


def subsample_pairs(mdata: md.MuData, n_cells: int, *, seed: int = 0) -> md.MuData:
    """Random ``n_cells`` RNA cells and their true ATAC partners (for smoke tests)."""
    n = mdata.mod["rna"].n_obs
    if n_cells >= n:
        return mdata
    rows = np.sort(np.random.default_rng(seed).permutation(n)[:n_cells])
    sub = subset_cells(mdata, rows, partner_index(mdata)[rows])
    sub.uns.update(dict(mdata.uns))
    return sub


def subset_cells(mdata: md.MuData, rna_rows: np.ndarray, atac_rows: np.ndarray) -> md.MuData:
    """A new MuData of the given rows of each modality (copies)."""
    rna = mdata.mod["rna"][np.asarray(rna_rows)].copy()
    atac = mdata.mod["atac"][np.asarray(atac_rows)].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return md.MuData({"rna": rna, "atac": atac})


@dataclass
class Split:
    """Training MuData (unpaired order) and evaluation MuData (row i of RNA <-> row i of ATAC)."""

    train: md.MuData
    test: md.MuData
    n_train: int
    n_test: int
    transductive: bool


def make_split(
    mdata: md.MuData, *, seed: int, heldout_fraction: float = 0.2, transductive: bool = False
) -> Split:
    """Held-out split (or, with ``transductive=True``, train and evaluate on all cells).

    The held-out cells are chosen at random among RNA cells with a generator seeded by ``seed``;
    their true ATAC partners are held out with them. The model is trained on the remaining cells
    of both modalities, with the ATAC rows in an independent random order.
    """
    rng = np.random.default_rng(seed)
    partner = partner_index(mdata)
    n = mdata.mod["rna"].n_obs
    if transductive:
        test_rna = np.arange(n)
        train_rna = np.arange(n)
    else:
        perm = rng.permutation(n)
        n_test = round(heldout_fraction * n)
        test_rna, train_rna = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    held_atac = set(partner[test_rna].tolist()) if not transductive else set()
    train_atac = np.array(
        [j for j in range(mdata.mod["atac"].n_obs) if j not in held_atac], dtype=int
    )
    train_atac = rng.permutation(train_atac)  # no row-order pairing in training data
    train = subset_cells(mdata, train_rna, train_atac)
    test = subset_cells(mdata, test_rna, partner[test_rna])
    return Split(train, test, len(train_rna), len(test_rna), transductive)


# ---------------------------------------------------------------------------------- metrics
#: Key of the embeddings handed to :func:`conaae_scverse.metrics.evaluate_alignment`.
_REP = "X_benchmark"


def score_alignment(
    mdata: md.MuData,
    z_rna: np.ndarray,
    z_atac: np.ndarray,
    *,
    labels_key: str | None = None,
    ks: Sequence[int] = (10, 50),
    metric: Literal["l1", "l2"] = "l1",
) -> dict[str, float]:
    """:func:`conaae_scverse.metrics.evaluate_alignment` of embeddings of ``mdata``'s cells.

    ``z_rna`` and ``z_atac`` have one row per cell of ``mdata``'s RNA and ATAC modality, in
    their order; cells are paired by the ``true_partner`` column (evaluation only). Nothing
    is written to ``mdata``.
    """
    from conaae_scverse.metrics import evaluate_alignment

    mods = {}
    for mod, z in (("rna", z_rna), ("atac", z_atac)):
        obs = mdata.mod[mod].obs
        mods[mod] = ad.AnnData(obs=obs.copy(), obsm={_REP: np.asarray(z)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        view = md.MuData(mods)
    return evaluate_alignment(
        view, use_rep=_REP, labels_key=labels_key, ks=tuple(ks), metric=metric
    )


def evaluate(model, split: Split, labels_key: str | None) -> dict[str, float]:
    """All metrics on the evaluation cells of ``split`` (row i of RNA <-> row i of ATAC).

    :func:`score_alignment` (``metrics.evaluate_alignment``): recall@k (l1, the paper's text,
    and l2), FOSCTTM (Euclidean), the paper's integration accuracy (greedy one-to-one matching
    of ATAC cells to RNA cells, l1); and the accuracy of the labels the model predicts.
    """
    test = split.test
    z_rna = model.get_latent_representation(test, "rna")
    z_atac = model.get_latent_representation(test, "atac")
    scores = score_alignment(test, z_rna, z_atac, labels_key=labels_key, metric="l1")
    out: dict[str, float] = {"n_eval": scores["n_pairs"]}
    for k in (10, 50):
        out[f"recall@{k}_l1"] = scores[f"recall@{k}"]
        out[f"recall@{k}_l2"] = scores[f"recall@{k}_l2"]
        out[f"chance@{k}"] = scores[f"chance@{k}"]
    out["foscttm"] = scores["foscttm"]
    if labels_key is not None:
        for mod in ("atac", "rna"):
            truth = test.mod[mod].obs[labels_key].astype(str).to_numpy()
            predicted = np.asarray(model.predict(test, mod), dtype=str)
            out[f"{mod}_label_acc"] = float((predicted == truth).mean())
        out["integration_acc"] = scores["integration_accuracy"]
    return out


# ---------------------------------------------------------------------------------- runs
@dataclass
class RunSpec:
    """One configuration of the model (constructor and train arguments)."""

    name: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    train_kwargs: dict[str, Any] = field(default_factory=dict)
    anchor: bool = False

    def key(self) -> str:
        """Identity of the configuration (rows with equal keys give equal results)."""
        return json.dumps([self.model_kwargs, self.train_kwargs, self.anchor], sort_keys=True)


def run_once(
    spec: RunSpec,
    split: Split,
    *,
    labels_key: str | None,
    seed: int,
    accelerator: str = "cpu",
    keep_history: bool = False,
) -> dict[str, Any]:
    """Set up, train and evaluate one model; return the metrics, wall time and history."""
    from conaae_scverse import ConAAE

    train = split.train
    start = time.perf_counter()
    ConAAE.setup_mudata(
        train, labels_key=labels_key, anchor_key="obs_names" if spec.anchor else None
    )
    model = ConAAE(train, seed=seed, **spec.model_kwargs)
    model.train(accelerator=accelerator, enable_progress_bar=False, **spec.train_kwargs)
    train_s = time.perf_counter() - start
    result: dict[str, Any] = evaluate(model, split, labels_key)
    result["train_s"] = train_s
    result["wall_s"] = time.perf_counter() - start
    result["n_train"] = split.n_train
    result["seed"] = seed
    if keep_history:
        result["history"] = {k: v.iloc[:, 0].tolist() for k, v in model.history.items()}
    return result


# ---------------------------------------------------------------------------------- summaries
METRIC_COLUMNS = (
    ("integration_acc", "integration ACC", True),
    ("recall@10_l1", "recall@10 (l1)", True),
    ("recall@50_l1", "recall@50 (l1)", True),
    ("recall@10_l2", "recall@10 (l2)", True),
    ("recall@50_l2", "recall@50 (l2)", True),
    ("foscttm", "FOSCTTM", False),
    ("atac_label_acc", "ATAC label ACC", True),
    ("wall_s", "wall s / run", False),
)


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value), ignoring NaN."""
    arr = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def summarize(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``{metric: {"mean": .., "sd": .., "n": ..}}`` over runs."""
    keys = {k for r in runs for k, v in r.items() if isinstance(v, int | float) and k != "seed"}
    out = {}
    for key in sorted(keys):
        mean, sd = mean_sd(r.get(key, float("nan")) for r in runs)
        out[key] = {"mean": mean, "sd": sd, "n": len(runs)}
    return out


def summary_cells(
    runs: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, bool, int]]
) -> list[str]:
    """``mean ± sd`` over runs of each ``(key, percent, digits)`` column; ``n/a`` if missing."""
    summary = summarize(runs)
    missing = {"mean": float("nan"), "sd": float("nan")}
    return [
        fmt(
            summary.get(key, missing)["mean"], summary.get(key, missing)["sd"], percent=p, digits=d
        )
        for key, p, d in columns
    ]


def epochs_for_steps(n_cells: int, steps: int, batch_size: int, train_size: float = 0.9) -> int:
    """Epochs giving about ``steps`` minibatches.

    Steps per epoch are counted as ``ConAAE.train`` counts them, without its 20-500 epoch clip.
    """
    per_epoch = max(1, round(train_size * n_cells) // batch_size)
    return max(1, round(steps / per_epoch))


def fmt(mean: float, sd: float | None = None, *, percent: bool = False, digits: int = 3) -> str:
    """``12.3 ± 0.4`` (percent) or ``0.123 ± 0.004``; ``n/a`` for NaN."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    scale, d = (100.0, 1) if percent else (1.0, digits)
    text = f"{mean * scale:.{d}f}"
    if sd is not None and not math.isnan(sd):
        text += f" ± {sd * scale:.{d}f}"
    return text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> str:
    """The machine's load average (1, 5, 15 min) as text, to say how busy it was."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def environment() -> dict[str, str]:
    """Versions and machine facts recorded with the results."""
    import torch

    import conaae_scverse

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "conaae_scverse": getattr(conaae_scverse, "__version__", "unknown"),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "platform": platform.platform(),
    }


def write_json(path: Path, payload: Any) -> None:
    """Write JSON (NaN as null) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_clean(payload), indent=1, sort_keys=False) + "\n")
    tmp.replace(path)


def write_report(
    args: Any,
    name: str,
    markdown: str,
    payload: Mapping[str, Any],
    *,
    quick_suffix: bool = True,
) -> None:
    """Write ``<name>.md`` and ``<name>.json`` (with args and environment) to ``args.out``.

    In ``--quick`` mode the files are ``<name>_quick.*`` (unless ``quick_suffix=False``), so
    that a smoke test never overwrites real results.
    """
    stem = name + ("_quick" if args.quick and quick_suffix else "")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(markdown + "\n")
    write_json(
        out / f"{stem}.json",
        {
            "environment": environment(),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            **payload,
        },
    )


def publish(
    args: Any,
    name: str,
    title: str,
    note: str,
    table: str,
    payload: Mapping[str, Any],
    *,
    quick_suffix: bool = True,
) -> str:
    """Print a report (title, note, table) and write it with :func:`write_report`."""
    text = "\n\n".join([f"# {title}", note, table])
    print(text)
    write_report(args, name, text, payload, quick_suffix=quick_suffix)
    return text


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else round(obj, 5)
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    return obj


def plot_history(history: Mapping[str, Sequence[float]], path: Path, title: str) -> bool:
    """Training curves (every ``*_train`` term and validation loss) as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    keys = [k for k in history if k.endswith("_train") or k in ("train_loss", "validation_loss")]
    if not keys:
        return False
    n = len(keys)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, key in zip(axes.ravel(), sorted(keys), strict=False):
        ax.plot(np.asarray(history[key], dtype=float))
        ax.set_title(key, fontsize=8)
        ax.set_xlabel("epoch", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
