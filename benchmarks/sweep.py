"""Hyperparameter sweep: candidate defaults over several seeds on every dataset.

Defaults are chosen here, not on one dataset or one seed: each configuration is trained on
sci-CAR (held-out 20 %), SNARE-seq (transductive, all cells) and simulated data (held-out 20 %,
1,200 cells) with several seeds, and the table gives mean ± sd of FOSCTTM, recall@50 (l1),
integration accuracy, ATAC label accuracy and the training wall time. A change of default is
worth making only when it helps on every dataset by more than the seed-to-seed spread.

Configurations are named in ``CONFIGS`` (constructor arguments, train arguments and an
optional number of training steps, turned into epochs with the same rule as ``train()``).
Runs are independent: ``--jobs`` at a time, each with ``--threads`` torch threads (one).

Examples
--------
python benchmarks/sweep.py
python benchmarks/sweep.py --configs default steps500 --seeds 5 --jobs 2
python benchmarks/sweep.py --configs default --seeds 2 --first-seed 3 --out more
python benchmarks/sweep.py --merge benchmarks/results/sweep.json more/sweep.json
python benchmarks/sweep.py --quick
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

_CONSTANT = {"lr_schedule": "constant"}

#: name -> (ConAAE arguments, train arguments, training steps or None for the default).
#: Each row changes the current default (500 steps, cosine decay from lr 2e-3) in one way.
CONFIGS: dict[str, tuple[dict[str, Any], dict[str, Any], int | None]] = {
    "default": ({}, {}, None),
    # The default up to commit 97c2088: 1,000 steps at a constant lr of 1e-3.
    "constant_lr1e-3_steps1000": ({}, {"lr": 1e-3, "plan_kwargs": _CONSTANT}, 1000),
    "steps250": ({}, {}, 250),
    "steps1000": ({}, {}, 1000),
    "steps2000": ({}, {}, 2000),
    "constant_lr": ({}, {"plan_kwargs": _CONSTANT}, None),
    "lr1e-3": ({}, {"lr": 1e-3}, None),
    "dropout0.2": ({"dropout": 0.2}, {}, None),
    "weight_decay1e-2": ({}, {"plan_kwargs": {"weight_decay": 1e-2}}, None),
    "hidden128_64": ({"n_hidden": (128, 64)}, {}, None),
    "latent16": ({"n_latent": 16}, {}, None),
    "margin1": ({"margin": 1.0}, {}, None),
    "batch128": ({}, {"batch_size": 128}, None),
    # Every feature into the networks (the default leaves modalities of <= 5,000 features
    # whole, so on these datasets it is the default), and every modality projected on 100
    # principal axes (the default does that above 5,000 features).
    "full_width": ({"n_input_components": 0}, {}, None),
    "project100": ({"n_input_components": 100}, {}, None),
    # Counts scaled per cell to the median total before log1p (datasets with counts only).
    "normalize_log1p": ({"input_transform": "normalize_log1p"}, {}, None),
}

#: dataset -> protocol (held-out 20 % or transductive).
DATASETS = {"sci_car": "heldout", "snare": "transductive", "simulated": "heldout"}
_LABELS = {key: (label, percent) for key, label, percent in common.METRIC_COLUMNS}
COLUMNS = (
    *(
        (key, *_LABELS[key])
        for key in ("foscttm", "recall@50_l1", "integration_acc", "atac_label_acc")
    ),
    ("train_s", "train s", False),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configs", nargs="+", default=None, help=f"rows to run (default: all): {list(CONFIGS)}"
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="train nothing: pool the runs of earlier sweep.json files into one table",
    )
    common.add_standard_arguments(
        parser, seeds=3, quick="smoke test: 300 cells, 20 steps", data_dir=True, first_seed=True
    )
    args = parser.parse_args(argv)
    if args.merge:  # rows are named by the files, which may come from older code
        return args
    args.configs = args.configs or list(CONFIGS)
    unknown = sorted(set(args.configs) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configs {unknown}; choose from {list(CONFIGS)}")
    if args.quick:
        args.seeds = 1
        args.configs = args.configs[:2]
    return args


def _run(task: tuple[str, str, int, str | None, bool]) -> dict[str, Any]:
    """One configuration x dataset x seed."""
    config, dataset, seed, data_dir, quick = task
    model_kwargs, train_kwargs, steps = CONFIGS[config]
    mdata = common.load_dataset(dataset, data_dir, random_state=seed)
    if quick:
        mdata = common.subsample_pairs(mdata, 300, seed=seed)
        steps = 20
    split = common.make_split(mdata, seed=seed, transductive=DATASETS[dataset] == "transductive")
    train_kwargs = dict(train_kwargs)
    if steps is not None:
        n_cells = max(split.train.mod["rna"].n_obs, split.train.mod["atac"].n_obs)
        batch = min(train_kwargs.get("batch_size", 256), n_cells)
        train_kwargs["max_epochs"] = common.epochs_for_steps(n_cells, steps, batch)
    spec = common.RunSpec(config, dict(model_kwargs), train_kwargs)
    result = common.run_once(spec, split, labels_key=common.LABEL_KEYS[dataset], seed=seed)
    return {"config": config, "dataset": dataset, **result}


def table(results: list[dict[str, Any]], configs: list[str], datasets: list[str]) -> str:
    """One markdown table per dataset: configurations as rows, mean ± sd over seeds."""
    parts = []
    for dataset in datasets:
        rows = []
        for config in configs:
            runs = [r for r in results if r["config"] == config and r["dataset"] == dataset]
            if not runs:
                continue
            columns = [(key, percent, 1 if key == "train_s" else 3) for key, _, percent in COLUMNS]
            rows.append([config, str(len(runs)), *common.summary_cells(runs, columns)])
        header = ["config", "seeds", *(label for _, label, _ in COLUMNS)]
        parts.append(
            f"## {dataset} ({DATASETS[dataset]})\n\n" + common.markdown_table(header, rows)
        )
    return "\n\n".join(parts)


def merge(args: argparse.Namespace, argv: list[str] | None) -> list[dict[str, Any]]:
    """Pool the runs of earlier sweeps (e.g. more seeds of the same configs) into one table."""
    results: list[dict[str, Any]] = []
    for path in args.merge:
        results += json.loads(path.read_text())["runs"]
    configs = args.configs or list(dict.fromkeys(r["config"] for r in results))
    datasets = [d for d in args.datasets if any(r["dataset"] == d for r in results)]
    results = [r for r in results if r["config"] in configs and r["dataset"] in datasets]
    seen = {(r["config"], r["dataset"], r["seed"]) for r in results}
    if len(seen) < len(results):
        msg = "The merged files hold the same config, dataset and seed twice."
        raise SystemExit(msg)
    command = " ".join(argv if argv is not None else sys.argv[1:])
    note = (
        f"Command: `python benchmarks/sweep.py {command}`; {len(results)} runs pooled from "
        f"{len(args.merge)} file(s). Train seconds come from the separate runs."
    )
    print("\n\n".join(["# Sweep (benchmarks/sweep.py)", note, table(results, configs, datasets)]))
    return results


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    if args.merge:
        return merge(args, argv)
    common.quiet()
    tasks = [
        (config, dataset, seed, args.data_dir, args.quick)
        for dataset in args.datasets
        for seed in common.seed_range(args)
        for config in args.configs
    ]
    start = time.perf_counter()

    def report(_, result: dict[str, Any]) -> None:
        print(
            f"{result['dataset']} {result['config']} seed {result['seed']}: FOSCTTM "
            f"{result['foscttm']:.3f} recall@50 {result['recall@50_l1']:.3f} int-ACC "
            f"{result.get('integration_acc', float('nan')):.3f} ({result['train_s']:.1f} s)",
            flush=True,
        )

    results = common.run_tasks(_run, tasks, jobs=args.jobs, threads=args.threads, on_result=report)
    wall = time.perf_counter() - start
    command = " ".join(argv if argv is not None else sys.argv[1:])
    note = (
        f"Command: `python benchmarks/sweep.py {command}`; {len(tasks)} runs in {wall:.0f} s with "
        f"{args.jobs} parallel job(s), {args.threads} torch thread(s) each; load average at the "
        f"end {common.load_average()}. Train seconds are inflated when jobs share the cores; "
        "compare them within one table."
    )
    table_text = table(results, args.configs, args.datasets)
    payload = {"runs": results, "wall_s": wall}
    common.publish(args, "sweep", "Sweep (benchmarks/sweep.py)", note, table_text, payload)
    return results


if __name__ == "__main__":
    main()
