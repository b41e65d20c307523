"""Label transfer into an unlabelled modality: labelled RNA, ATAC without labels, no pairs.

Labelled RNA cells, ATAC cells whose labels are hidden from training, and the accuracy of the
labels the model predicts for the hidden ATAC cells (``ConAAE.predict``, the classifier on the
latent), with FOSCTTM of the same run (known pairs, evaluation only) and the calibration of
``conaae_label_confidence`` (expected calibration error). Settings, each over several seeds:

- **no ATAC labels, no prior** (``label_prior="none"``, the paper's model): the modalities
  can only be lined up by the shape of their distributions.
- **no ATAC labels, OT prior** (``label_prior="ot"``, the default without coordinates):
  Gromov-Wasserstein couplings of the two modalities' cluster geometries give pseudo-labels.
- **no ATAC labels, links prior** (``label_prior="links"``, the default with
  ``gene_links``): ATAC gene activity from peak-gene links (``ca.pp.link_peaks_to_genes``,
  hg38 annotation) against RNA expression; with it, by default, the ATAC counts scaled per
  cell and the ``depth_invariance`` loss. Only on data with peak coordinates (BMMC, PBMC).
  The links settings of the diagnostics below keep what the links prior ran with before
  (log1p counts, no depth invariance: **..., links prior, log1p counts, no depth
  invariance**), on which they were measured.
- **5 % ATAC labels**: a few known ATAC labels tie each ATAC population to its RNA partner.
- **..., depth invariance** (only with ``--settings``): the OT or links setting with the
  ``depth_invariance`` loss (weight 10; off by default), whose latents of binomially thinned
  counts are pulled onto those of the full counts.
- **no ATAC labels, OT prior, no contrastive term** (only with ``--settings``): the OT
  setting with the contrastive triplet's weight set to 0, to measure what the term gives.
- **..., pseudo-labels held by the classifier** (only with ``--settings``): the OT or links
  setting with ``pseudo_label_loss="classifier"`` (the default of the links prior).
- **no ATAC labels, links prior, pseudo-labels held by the triplet** (only with
  ``--settings``): the links setting with ``pseudo_label_loss="contrastive"``, its default
  before ``"auto"``.
- **..., counts scaled to the median depth** (only with ``--settings``): the OT or links
  setting on counts scaled per cell to the modality's median total (all cells of a dataset,
  before any split; ``input_transform="log1p"``), to see what sequencing depth does to each
  dataset where no coordinates exist, as ``vs_scglue.py --methods conaae_links_depth`` does
  where they do. Only on data of counts (sci-CAR, BMMC, PBMC).
- **..., ATAC counts normalised per cell in the model, depth invariance** (only with
  ``--settings``): the OT or links setting with ``input_transform={"atac":
  "normalize_log1p"}`` and the ``depth_invariance`` loss (weight 10). Only on data of counts.
- **..., counts normalised per cell in the model** (only with ``--settings``): the OT or
  links setting with ``input_transform="normalize_log1p"``: the model scales each cell's
  counts to the median total of its training cells before log1p (both modalities; the
  held-out BMMC donor to the same total). Only on data of counts.

Data: ``datasets.simulate`` (three equal-sized populations), the SNARE-seq cell lines, sci-CAR
(treatment time), all cells, transductive; and the BMMC multiome starter (21 cell types, peak
coordinates), trained on its ``is_train`` donor and scored on the held-out donor; muon's PBMC
multiome test data (peak coordinates; labels: Leiden clusters of the RNA), all cells. The models
see no pairing: the two modalities are shuffled on their own.

Examples
--------
python benchmarks/label_transfer.py
python benchmarks/label_transfer.py --seeds 2 --datasets simulated snare
python benchmarks/label_transfer.py --merge run1/label_transfer.json run2/label_transfer.json
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

#: Settings whose data are counts scaled per cell to the median total.
MEDIAN_DEPTH = "counts scaled to the median depth"
#: Settings whose model scales each cell's counts to the median total before log1p.
NORMALIZED = "counts normalised per cell in the model"
#: Setting name -> (fraction of ATAC labels kept, label_prior, other ConAAE arguments).
SETTINGS = {
    "no ATAC labels, no prior": (0.0, "none", {}),
    "no ATAC labels, OT prior": (0.0, "ot", {}),
    "no ATAC labels, links prior": (0.0, "links", {}),
    "5 % ATAC labels": (0.05, "auto", {}),
    "no ATAC labels, OT prior, depth invariance": (0.0, "ot", common.DEPTH_INVARIANCE),
    "no ATAC labels, links prior, depth invariance": (
        0.0,
        "links",
        {**common.LINKS_PLAIN, **common.DEPTH_INVARIANCE},
    ),
    "no ATAC labels, links prior, log1p counts, no depth invariance": (
        0.0,
        "links",
        common.LINKS_PLAIN,
    ),
    "no ATAC labels, OT prior, no contrastive term": (
        0.0,
        "ot",
        {"loss_weights": {"contrastive": 0.0}},
    ),
    "no ATAC labels, OT prior, pseudo-labels held by the classifier": (
        0.0,
        "ot",
        {"pseudo_label_loss": "classifier"},
    ),
    "no ATAC labels, links prior, pseudo-labels held by the classifier": (
        0.0,
        "links",
        {**common.LINKS_PLAIN, "pseudo_label_loss": "classifier"},
    ),
    "no ATAC labels, links prior, pseudo-labels held by the triplet": (
        0.0,
        "links",
        {**common.LINKS_PLAIN, "pseudo_label_loss": "contrastive"},
    ),
    # Scaled counts are not integers: "auto" would take them for normalised values.
    f"no ATAC labels, OT prior, {MEDIAN_DEPTH}": (0.0, "ot", {"input_transform": "log1p"}),
    f"no ATAC labels, links prior, {MEDIAN_DEPTH}": (0.0, "links", common.LINKS_PLAIN),
    f"no ATAC labels, OT prior, {NORMALIZED}": (0.0, "ot", {"input_transform": "normalize_log1p"}),
    f"no ATAC labels, links prior, {NORMALIZED}": (
        0.0,
        "links",
        {**common.LINKS_PLAIN, "input_transform": "normalize_log1p"},
    ),
    f"no ATAC labels, OT prior, ATAC {NORMALIZED}, depth invariance": (
        0.0,
        "ot",
        common.ATAC_DEPTH,
    ),
    f"no ATAC labels, links prior, ATAC {NORMALIZED}, depth invariance": (
        0.0,
        "links",
        common.ATAC_DEPTH,
    ),
}
#: Diagnostics, run only when --settings names them: an option that is off by default, and
#: a term of the default model switched off.
DIAGNOSTIC_SETTINGS = (
    "depth invariance",
    "no contrastive term",
    "held by the classifier",
    "held by the triplet",
    MEDIAN_DEPTH,
    NORMALIZED,
)
#: Run unless --settings says otherwise.
DEFAULT_SETTINGS = tuple(
    name for name in SETTINGS if not any(what in name for what in DIAGNOSTIC_SETTINGS)
)
#: Datasets whose peaks have genomic coordinates (the links prior runs only there).
WITH_COORDINATES = {"bmmc", "pbmc"}
#: Datasets of counts in both modalities (depth scaling runs only there; the SNARE-seq files
#: and ``datasets.simulate`` hold normalised values).
WITH_COUNTS = {"bmmc", "pbmc", "sci_car"}


def settings_for(dataset: str) -> dict[str, tuple[float, str, dict]]:
    return {
        name: spec
        for name, spec in SETTINGS.items()
        if (spec[1] != "links" or dataset in WITH_COORDINATES)
        and (not (MEDIAN_DEPTH in name or NORMALIZED in name) or dataset in WITH_COUNTS)
    }


def _split(mdata, dataset: str):
    """Training MuData and the (RNA, ATAC) cells scored; BMMC holds out its second donor."""
    if dataset != "bmmc":
        return mdata, mdata
    rows = {mod: mdata.mod[mod].obs["is_train"].astype(bool).to_numpy() for mod in mdata.mod}
    train = common.subset_cells(mdata, np.flatnonzero(rows["rna"]), np.flatnonzero(rows["atac"]))
    test = common.subset_cells(mdata, np.flatnonzero(~rows["rna"]), np.flatnonzero(~rows["atac"]))
    train.uns["dataset"] = dict(mdata.uns["dataset"])  # the genome build, for the links
    return train, test


def run(task: tuple[str, int, str, argparse.Namespace]) -> dict:
    """Train in one setting; score the hidden ATAC labels and the alignment."""
    from conaae_scverse import ConAAE, metrics

    dataset, seed, setting, args = task
    fraction, prior, model_kwargs = SETTINGS[setting]
    key = common.LABEL_KEYS[dataset]
    if dataset == "simulated":
        mdata = common.load_dataset(dataset, n_cells=args.sim_cells, random_state=seed)
    else:
        mdata = common.load_dataset(dataset, args.data_dir, random_state=seed)
    if MEDIAN_DEPTH in setting:
        common.scale_to_median_depth(mdata)
    train, test = _split(mdata, dataset)
    atac = train.mod["atac"].obs
    truth_train = atac[key].astype(str).to_numpy()
    known = np.random.default_rng(seed).random(len(atac)) < fraction
    atac[key] = atac[key].where(known)
    links = common.gene_links(train, args.data_dir) if prior == "links" else None
    start = time.perf_counter()
    ConAAE.setup_mudata(train, labels_key=key, gene_links=links)
    model = ConAAE(train, seed=seed, label_prior=prior, **model_kwargs)
    prior_seconds = time.perf_counter() - start
    train_kwargs = {"max_epochs": 2} if args.quick else {}
    model.train(
        accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, **train_kwargs
    )
    seconds = time.perf_counter() - start
    transductive = test is train
    truth = truth_train if transductive else test.mod["atac"].obs[key].astype(str).to_numpy()
    hidden = ~known if transductive else np.ones(len(truth), dtype=bool)
    probs = model.predict(None if transductive else test, modality="atac", soft=True)
    predicted = np.asarray(probs.columns, dtype=str)[probs.to_numpy().argmax(axis=1)]
    correct = predicted[hidden] == truth[hidden]
    ece, _ = metrics.calibration_error(probs.to_numpy().max(axis=1)[hidden], correct)
    z_rna = model.get_latent_representation(test, "rna")
    z_atac = model.get_latent_representation(test, "atac")
    result = {
        "dataset": dataset,
        "seed": seed,
        "setting": setting,
        "hidden_cells": int(hidden.sum()),
        "accuracy": float(correct.mean()),
        "foscttm": common.score_alignment(test, z_rna, z_atac)["foscttm"],
        "calibration_error": ece,
        "train_s": seconds,
        "prior_s": prior_seconds,
        "prior_accuracy": None,
    }
    if model.label_prior_ is not None:
        prior_labels = np.asarray(model.label_categories_)[
            model.label_prior_.probabilities.argmax(axis=1)
        ]
        result["prior_accuracy"] = float(np.mean(prior_labels == truth_train))
    return result


def publish(results: list[dict], args: argparse.Namespace) -> None:
    """Print the table of ``results`` and write it with its JSON."""
    rows = []
    for dataset in args.datasets:
        for name in settings_for(dataset):
            runs = [r for r in results if r["dataset"] == dataset and r["setting"] == name]
            if not runs:
                continue
            accuracy = [r["accuracy"] for r in runs]
            priors = [r["prior_accuracy"] for r in runs if r["prior_accuracy"] is not None]
            rows.append(
                [
                    dataset,
                    name,
                    common.fmt(*common.mean_sd(accuracy), percent=True, digits=1),
                    " ".join(f"{a:.2f}" for a in accuracy),
                    f"{sum(a >= args.bar for a in accuracy)} / {len(accuracy)}",
                    " ".join(f"{r['foscttm']:.3f}" for r in runs),
                    " ".join(f"{r['calibration_error']:.2f}" for r in runs),
                    " ".join(f"{a:.2f}" for a in priors) or "-",
                    f"{np.mean([r['train_s'] for r in runs]):.0f}",
                ]
            )
    table = common.markdown_table(
        [
            "dataset",
            "setting",
            "ATAC label accuracy",
            "per seed",
            f"seeds >= {args.bar:.0%}",
            "FOSCTTM per seed",
            "calibration error per seed",
            "prior's own accuracy per seed",
            "seconds (prior + train)",
        ],
        rows,
    )
    note = (
        f"Seeds 0-{args.seeds - 1}; default model and training; CPU, "
        f"{common.threads_note(args)}. Accuracy of `ConAAE.predict` on the ATAC cells whose "
        "labels were hidden "
        "(BMMC: all cells of the held-out donor); FOSCTTM on the same cells' known pairs "
        "(chance 0.5); calibration error: expected calibration error of the predicted label's "
        "probability (0 = calibrated)."
        + (" QUICK MODE: smoke test, numbers meaningless." if args.quick else "")
    )
    title = "Label transfer (benchmarks/label_transfer.py)"
    common.publish(args, "label_transfer", title, note, table, {"results": results})


def merge(args: argparse.Namespace) -> int:
    """One table from earlier runs' JSON files (e.g. datasets run separately)."""
    import json

    results = []
    for path in args.merge:
        results += json.loads(path.read_text())["results"]
    keys = [(r["dataset"], r["setting"], r["seed"]) for r in results]
    if len(set(keys)) != len(keys):
        msg = "The merged files hold the same dataset, setting and seed twice."
        raise SystemExit(msg)
    present = {r["dataset"] for r in results}
    args.datasets = [d for d in common.LABEL_KEYS if d in present]
    args.seeds = max(r["seed"] for r in results) + 1
    args.merge = [str(path) for path in args.merge]  # JSON-ready, for the report
    publish(results, args)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=None)
    parser.add_argument(
        "--settings", nargs="+", default=list(DEFAULT_SETTINGS), choices=list(SETTINGS)
    )
    parser.add_argument("--sim-cells", type=int, default=1200)
    parser.add_argument("--bar", type=float, default=0.9, help="accuracy counted per seed")
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=None,
        help="render one table from the JSON files of earlier runs instead of running",
    )
    common.add_standard_arguments(
        parser,
        seeds=4,
        threads=2,
        quick="smoke test: 1 seed, 2 epochs, 300 simulated cells, simulated and BMMC data",
        data_dir=True,
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sim_cells, args.seeds = 300, 1
    if args.datasets is None:
        # Quick mode still runs both kinds of prior: OT (simulated) and links (BMMC).
        args.datasets = ["simulated", "bmmc"] if args.quick else [*common.LABEL_KEYS]
    if args.merge:
        return merge(args)
    common.quiet()
    tasks = [
        (dataset, seed, setting, args)
        for dataset in args.datasets
        for setting in settings_for(dataset)
        if setting in args.settings
        for seed in common.seed_range(args)
    ]

    def report(_, result: dict) -> None:
        print(
            f"  {result['dataset']} | {result['setting']} | seed {result['seed']}: accuracy "
            f"{result['accuracy']:.3f}, FOSCTTM {result['foscttm']:.3f}, prior accuracy "
            f"{result['prior_accuracy']}, {result['train_s']:.0f} s "
            f"(prior and setup {result['prior_s']:.1f} s)",
            flush=True,
        )

    results = common.run_tasks(run, tasks, jobs=args.jobs, threads=args.threads, on_result=report)
    publish(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
