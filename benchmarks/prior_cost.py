"""What the label prior adds to the time of a default run, at 10k cells per modality.

Simulated data (``datasets.simulate``), RNA labelled, ATAC without labels, so that the prior
runs. Times the model's construction (registration, and the prior when on) and the default
``train()`` with ``label_prior="none"`` and with the default (``"auto"``, here the OT prior:
the simulation has no peak coordinates). Run it on an otherwise idle machine.

Examples
--------
python benchmarks/prior_cost.py
python benchmarks/prior_cost.py --cells 20000 --seeds 3
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


def run(task: tuple[int, argparse.Namespace]) -> list[dict]:
    """Both settings of the prior for one seed, one after the other."""
    from conaae_scverse import ConAAE

    seed, args = task
    runs = []
    for prior in ("none", "auto"):
        mdata = common.load_dataset("simulated", n_cells=args.cells, random_state=seed)
        mdata.mod["atac"].obs["batch"] = np.nan
        ConAAE.setup_mudata(mdata, labels_key="batch")
        start = time.perf_counter()
        model = ConAAE(mdata, seed=seed, label_prior=prior)
        setup_s = time.perf_counter() - start
        start = time.perf_counter()
        train_kwargs = {"max_epochs": 2} if args.quick else {}
        model.train(
            accelerator="cpu",
            enable_progress_bar=False,
            enable_model_summary=False,
            **train_kwargs,
        )
        train_s = time.perf_counter() - start
        runs.append({"label_prior": prior, "seed": seed, "model_s": setup_s, "train_s": train_s})
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10_000, help="cells per modality")
    common.add_standard_arguments(parser, threads=2, quick="smoke test: 600 cells, 2 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.cells = 600
    common.quiet()
    load = common.load_average()
    tasks = [(seed, args) for seed in common.seed_range(args)]
    runs = [
        r for rs in common.run_tasks(run, tasks, jobs=args.jobs, threads=args.threads) for r in rs
    ]
    several = args.seeds > 1
    rows = []
    for r in runs:
        base = next(b for b in runs if b["seed"] == r["seed"] and b["label_prior"] == "none")
        total = base["model_s"] + base["train_s"]
        rows.append(
            [
                *([str(r["seed"])] if several else []),
                r["label_prior"],
                f"{r['model_s']:.1f}",
                f"{r['train_s']:.1f}",
                f"{(r['model_s'] + r['train_s'] - total) / total:+.0%}",
            ]
        )
    header = ["label_prior", "ConAAE(...) s (prior included)", "train() s", "total vs none"]
    table = common.markdown_table(["seed", *header] if several else header, rows)
    seeds = f"seeds 0-{args.seeds - 1}, " if several else ""
    note = (
        f"{args.cells} simulated cells per modality, RNA labelled, ATAC unlabelled; default "
        f"model and training; {seeds}CPU, {common.threads_note(args)}; "
        f"load average before: {load}."
        + (" QUICK MODE: smoke test, numbers meaningless." if args.quick else "")
    )
    title = "Cost of the label prior (benchmarks/prior_cost.py)"
    common.publish(args, "prior_cost", title, note, table, {"runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
