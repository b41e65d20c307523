"""Unknown cell types: ATAC cells of a type that the labelled RNA reference lacks.

Real references never hold every type of the query. Here one type at a time is removed from
the labelled RNA cells; the ATAC cells keep every type but no labels, and nothing pairs the
modalities (the default model, label prior ``"auto"``: OT on SNARE-seq and the simulation,
peak-gene links on the PBMC multiome data, whose peaks have coordinates). For the ATAC cells
of the removed type ("novel") the right answer is
``ConAAE.predict(..., min_confidence=...)``'s "unknown" call; for the others, their own
label. Reported per held-out type and seed:

- how well three scores rank novel above known ATAC cells (AUROC; 0.5 is chance, below 0.5
  means the novel cells score *lower*): ``1 - conaae_label_confidence``,
  ``conaae_match_distance`` (latent distance to the nearest RNA cell) and one minus the label
  prior's confidence (``model.label_prior_``, before training);
- at each ``min_confidence`` (0.5 and 0.8 by default): the share of novel cells called
  unknown and the share of known cells called unknown;
- the accuracy on the known ATAC cells, against the same model trained with the full
  reference (``benchmarks/label_transfer.py``): what a missing type costs the others.

Examples
--------
python benchmarks/unknown_types.py
python benchmarks/unknown_types.py --datasets snare --seeds 2 --threads 1
python benchmarks/unknown_types.py --merge all/unknown_types.json pbmc/unknown_types.json
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

DATASETS = ("snare", "simulated", "pbmc")
#: Datasets whose peaks have coordinates: their runs get peak-gene links (the links prior).
WITH_COORDINATES = ("pbmc",)


def _load(dataset: str, seed: int, args: argparse.Namespace):
    if dataset == "simulated":
        return common.load_dataset(dataset, n_cells=args.sim_cells, random_state=seed)
    return common.load_dataset(dataset, args.data_dir, random_state=seed)


def run(dataset: str, seed: int, held_out: str, full, links, args: argparse.Namespace) -> dict:
    """Train without one type in the RNA reference of ``full``; score the ATAC cells' calls."""
    from sklearn.metrics import roc_auc_score

    from conaae_scverse import ConAAE

    key = common.LABEL_KEYS[dataset]
    rna_labels = full.mod["rna"].obs[key].astype(str).to_numpy()
    mdata = common.subset_cells(
        full, np.flatnonzero(rna_labels != held_out), np.arange(full.mod["atac"].n_obs)
    )
    rna, atac = mdata.mod["rna"].obs, mdata.mod["atac"].obs
    rna[key] = rna[key].astype(str).astype("category")  # the removed type is no category
    truth = atac[key].astype(str).to_numpy()
    atac[key] = atac[key].where(np.zeros(len(atac), dtype=bool))
    start = time.perf_counter()
    ConAAE.setup_mudata(mdata, labels_key=key, gene_links=links)
    model = ConAAE(mdata, seed=seed)
    train_kwargs = {"max_epochs": 2} if args.quick else {}
    model.train(
        accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, **train_kwargs
    )
    seconds = time.perf_counter() - start
    confidence = model.predict(modality="atac", soft=True).max(axis=1).to_numpy()
    novel = truth == held_out
    distance = model.match_cells()["atac"]["conaae_match_distance"].to_numpy()
    prior_confidence = model.label_prior_.confidence  # ATAC has no label: a prior always runs
    labelled = model.predict(modality="atac")
    result = {
        "dataset": dataset,
        "seed": seed,
        "held_out": held_out,
        "novel_fraction": float(novel.mean()),
        "auroc": float(roc_auc_score(novel, 1 - confidence)),
        "auroc_match_distance": float(roc_auc_score(novel, distance)),
        "auroc_prior": float(roc_auc_score(novel, 1 - prior_confidence)),
        "known_accuracy": float(np.mean(labelled[~novel] == truth[~novel])),
        "calls": {},
        "train_s": seconds,
    }
    for cut in args.min_confidence:
        unknown = model.predict(modality="atac", min_confidence=cut) == "unknown"
        result["calls"][str(cut)] = {
            "novel_called_unknown": float(unknown[novel].mean()),
            "known_called_unknown": float(unknown[~novel].mean()),
        }
    return result


def run_seed(task: tuple[str, int, argparse.Namespace]) -> list[dict]:
    """Every type of one dataset held out in turn, one seed (the data loaded once)."""
    dataset, seed, args = task
    full = _load(dataset, seed, args)  # run() trains on copies of it
    links = common.gene_links(full, args.data_dir) if dataset in WITH_COORDINATES else None
    types = sorted(full.mod["rna"].obs[common.LABEL_KEYS[dataset]].astype(str).unique())
    return [run(dataset, seed, held_out, full, links, args) for held_out in types]


def publish(results: list[dict], args: argparse.Namespace) -> None:
    rows = []
    for dataset in args.datasets:
        for held_out in sorted({r["held_out"] for r in results if r["dataset"] == dataset}):
            runs = [r for r in results if r["dataset"] == dataset and r["held_out"] == held_out]

            def per_seed(name: str, cut: str | None = None, runs=runs) -> str:
                values = [r["calls"][cut][name] if cut else r[name] for r in runs]
                return " ".join(f"{v:.2f}" for v in values)

            cuts = [str(c) for c in args.min_confidence]
            rows.append(
                [
                    dataset,
                    held_out,
                    f"{runs[0]['novel_fraction']:.2f}",
                    per_seed("auroc"),
                    per_seed("auroc_match_distance"),
                    per_seed("auroc_prior"),
                    *[per_seed("novel_called_unknown", c) for c in cuts],
                    *[per_seed("known_called_unknown", c) for c in cuts],
                    per_seed("known_accuracy"),
                ]
            )
    table = common.markdown_table(
        [
            "dataset",
            "type missing from RNA",
            "its share of ATAC cells",
            "AUROC of 1 - confidence, per seed",
            "AUROC of match distance",
            "AUROC of 1 - prior confidence",
            *[f"novel called unknown (< {c})" for c in args.min_confidence],
            *[f"known called unknown (< {c})" for c in args.min_confidence],
            "known ATAC accuracy (no unknown call)",
        ],
        rows,
    )
    note = (
        f"Seeds 0-{args.seeds - 1}; default model and training (label prior 'auto': OT on "
        "SNARE-seq and the simulation, peak-gene links on PBMC); CPU, "
        f"{common.threads_note(args)}. One type at a time is removed from the labelled RNA "
        "cells; the ATAC cells keep all types, unlabelled; no pairs. Novel: the ATAC cells of "
        "the removed type. Match distance: `conaae_match_distance`, the latent distance of an "
        "ATAC cell to its nearest RNA cell."
        + (" Merged from " + ", ".join(f"`{f}`" for f in args.merge) + "." if args.merge else "")
        + (" QUICK MODE: smoke test, numbers meaningless." if args.quick else "")
    )
    title = "Cell types missing from the reference (benchmarks/unknown_types.py)"
    common.publish(args, "unknown_types", title, note, table, {"results": results})


def merge(args: argparse.Namespace) -> int:
    """One table from earlier runs' JSON files; a later file's dataset replaces an earlier's."""
    import json

    by_dataset: dict[str, list[dict]] = {}
    for path in args.merge:
        runs = json.loads(path.read_text())["results"]
        for dataset in {r["dataset"] for r in runs}:
            by_dataset[dataset] = [r for r in runs if r["dataset"] == dataset]
    args.datasets = [d for d in DATASETS if d in by_dataset]
    args.seeds = max(r["seed"] for runs in by_dataset.values() for r in runs) + 1
    args.merge = [str(path) for path in args.merge]  # JSON-ready, for the report
    publish([r for d in args.datasets for r in by_dataset[d]], args)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--sim-cells", type=int, default=1200)
    parser.add_argument("--min-confidence", type=float, nargs="+", default=[0.5, 0.8])
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=None,
        help="render one table from the JSON files of earlier runs instead of running (a "
        "later file's runs of a dataset replace an earlier file's)",
    )
    common.add_standard_arguments(
        parser,
        seeds=4,
        threads=2,
        quick="smoke test: 1 seed, 2 epochs, 300 simulated cells",
        data_dir=True,
    )
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args)
    if args.quick:
        args.sim_cells, args.seeds, args.datasets = 300, 1, ["simulated"]
    common.quiet()

    def report(_, runs: list[dict]) -> None:
        for r in runs:
            print(
                f"  {r['dataset']} | without {r['held_out']} | seed {r['seed']}: AUROC "
                f"{r['auroc']:.2f} (match distance {r['auroc_match_distance']:.2f}, prior "
                f"{r['auroc_prior']:.2f}), known accuracy {r['known_accuracy']:.2f}, "
                f"{r['train_s']:.0f} s",
                flush=True,
            )

    tasks = [(d, seed, args) for d in args.datasets for seed in common.seed_range(args)]
    per_task = common.run_tasks(
        run_seed, tasks, jobs=args.jobs, threads=args.threads, on_result=report
    )
    publish([r for runs in per_task for r in runs], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
