"""What the label prior adds to the time of a default run, at 10k cells per modality.

Simulated data (``datasets.simulate``), RNA labelled, ATAC without labels, so that the prior
runs. Times the model's construction (registration, and the prior when on) and the default
``train()`` with ``label_prior="none"`` and with the default (``"auto"``, here the OT prior:
the simulation has no peak coordinates). Run it on an otherwise idle machine.

Examples
--------
python benchmarks/prior_cost.py
python benchmarks/prior_cost.py --cells 20000
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


def run(prior: str, args: argparse.Namespace) -> dict:
    from conaae_scverse import ConAAE

    mdata = common.load_dataset("simulated", n_cells=args.cells, random_state=0)
    mdata.mod["atac"].obs["batch"] = np.nan
    ConAAE.setup_mudata(mdata, labels_key="batch")
    start = time.perf_counter()
    model = ConAAE(mdata, label_prior=prior)
    setup_s = time.perf_counter() - start
    start = time.perf_counter()
    train_kwargs = {"max_epochs": 2} if args.quick else {}
    model.train(
        accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, **train_kwargs
    )
    return {"label_prior": prior, "model_s": setup_s, "train_s": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10_000, help="cells per modality")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="smoke test: 600 cells, 2 epochs")
    parser.add_argument("--out-dir", type=Path, default=common.DEFAULT_RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.quick:
        args.cells = 600
    common.quiet()
    import torch

    torch.set_num_threads(args.threads)
    load = common.load_average()
    runs = [run(prior, args) for prior in ("none", "auto")]
    base = runs[0]["model_s"] + runs[0]["train_s"]
    rows = [
        [
            r["label_prior"],
            f"{r['model_s']:.1f}",
            f"{r['train_s']:.1f}",
            f"{(r['model_s'] + r['train_s'] - base) / base:+.0%}",
        ]
        for r in runs
    ]
    table = common.markdown_table(
        ["label_prior", "ConAAE(...) s (prior included)", "train() s", "total vs none"], rows
    )
    note = (
        f"{args.cells} simulated cells per modality, RNA labelled, ATAC unlabelled; default "
        f"model and training; CPU, {args.threads} torch thread(s); load average before: {load}."
        + (" QUICK MODE: smoke test, numbers meaningless." if args.quick else "")
    )
    title = "Cost of the label prior (benchmarks/prior_cost.py)"
    common.publish(args, "prior_cost", title, note, table, {"runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
