"""The demo's setting over several seeds: default training against the previous default.

``conaae demo`` trains on 1,200 simulated paired cells per modality with the pairing hidden and
half of the ATAC labels hidden, and scores all cells (transductive). This script runs that
setting for ``--seeds`` seeds with the current default (500 steps, learning rate decaying from
2e-3 along a cosine) and with the previous one (1,000 steps at a constant 1e-3), ``--jobs``
runs at a time with ``--threads`` torch threads each (one by default), and prints mean ± sd.

Examples
--------
python benchmarks/demo_seeds.py
python benchmarks/demo_seeds.py --seeds 5 --jobs 2
python benchmarks/demo_seeds.py --quick
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
from sweep import CONFIGS

#: row name -> configuration of `sweep.CONFIGS` (ConAAE arguments, train arguments, steps).
TRAININGS = {
    "default": CONFIGS["default"],
    "previous default (1,000 steps, constant lr 1e-3)": CONFIGS["constant_lr1e-3_steps1000"],
}
COLUMNS = (
    ("foscttm", False, 3),
    ("recall@50", True, 3),
    ("hidden_atac_label_accuracy", True, 3),
    ("train_s", False, 1),
)


def _run(task: tuple[str, int, int, bool]) -> dict[str, Any]:
    import numpy as np

    from conaae_scverse import ConAAE, datasets, metrics
    from conaae_scverse._constants import OUTPUT_KEYS

    training, seed, n_cells, quick = task
    mdata = datasets.simulate(n_cells=n_cells, random_state=seed)
    atac_obs = mdata["atac"].obs
    truth = atac_obs["batch"].copy()
    hidden = np.random.default_rng(seed).random(len(atac_obs)) < 0.5  # as `conaae demo`
    atac_obs["batch"] = truth.where(~hidden)
    model_kwargs, train_kwargs, steps = TRAININGS[training]
    ConAAE.setup_mudata(mdata, labels_key="batch")
    model = ConAAE(mdata, seed=seed, **model_kwargs)
    kwargs = dict(train_kwargs)
    if quick:
        kwargs["max_epochs"] = 2
    elif steps is not None:
        kwargs["max_epochs"] = common.epochs_for_steps(n_cells, steps, 256)
    start = time.perf_counter()
    model.train(enable_progress_bar=False, enable_model_summary=False, **kwargs)
    seconds = time.perf_counter() - start
    model.write_results()
    atac_obs["batch"] = truth
    figures = metrics.evaluate_alignment(mdata, labels_key="batch")
    predicted = atac_obs[OUTPUT_KEYS.LABEL].astype(str).to_numpy()
    return {
        "training": training,
        "seed": seed,
        "foscttm": float(figures["foscttm"]),
        "recall@50": float(figures["recall@50"]),
        "hidden_atac_label_accuracy": float(
            np.mean(predicted[hidden] == truth.astype(str).to_numpy()[hidden])
        ),
        "train_s": seconds,
        "epochs": int(model.trainer.current_epoch),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-cells", type=int, default=1200)
    common.add_standard_arguments(parser, seeds=3, quick="smoke test: 1 seed, 2 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.n_cells = 1, 200
    common.quiet()
    tasks = [(t, s, args.n_cells, args.quick) for s in common.seed_range(args) for t in TRAININGS]
    start = time.perf_counter()

    def report(_, r: dict[str, Any]) -> None:
        print(
            f"{r['training']} seed {r['seed']}: FOSCTTM {r['foscttm']:.4f} "
            f"recall@50 {r['recall@50']:.4f} ({r['train_s']:.1f} s)",
            flush=True,
        )

    results = common.run_tasks(_run, tasks, jobs=args.jobs, threads=args.threads, on_result=report)
    rows = []
    for training in TRAININGS:
        runs = [r for r in results if r["training"] == training]
        rows.append([training, str(len(runs)), *common.summary_cells(runs, COLUMNS)])
    command = " ".join(argv if argv is not None else sys.argv[1:])
    note = (
        f"Command: `python benchmarks/demo_seeds.py {command}`; {len(tasks)} runs in "
        f"{time.perf_counter() - start:.0f} s, {args.jobs} parallel job(s), {args.threads} torch "
        f"thread(s) each. {args.n_cells} simulated cells per modality, half of the ATAC labels "
        "hidden, all cells scored."
    )
    table = common.markdown_table(
        ["training", "seeds", "FOSCTTM", "recall@50", "hidden ATAC label ACC", "train s"], rows
    )
    title = "The demo's setting over seeds (benchmarks/demo_seeds.py)"
    common.publish(args, "demo_seeds", title, note, table, {"runs": results})
    return results


if __name__ == "__main__":
    main()
