"""Label transfer into an unlabelled modality: how often does it work, and what fixes it?

Labelled RNA cells, ATAC cells whose labels are hidden from training, and the accuracy of the
labels the model predicts for the hidden ATAC cells (``ConAAE.predict``, the classifier on the
latent). Three settings, each over several seeds:

- **no ATAC labels**: every ATAC label hidden. The two modalities can then only be lined up by
  the shape of their distributions, which is ambiguous when populations look alike.
- **5 % ATAC labels**: a few known ATAC labels tie each ATAC population to its RNA partner.
- **50 % ATAC labels**: half the ATAC labels known (the setting of ``conaae demo``).

Data: ``datasets.simulate`` (three equal-sized populations, the hardest case for
distribution matching) and the SNARE-seq cell lines (four cell lines of unequal sizes). The
models see no pairing: the two modalities are shuffled on their own.

Examples
--------
python benchmarks/label_transfer.py
python benchmarks/label_transfer.py --seeds 2 --datasets simulated
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

#: Fraction of ATAC labels kept for training, by setting name.
SETTINGS = {"no ATAC labels": 0.0, "5 % ATAC labels": 0.05, "50 % ATAC labels": 0.5}


def run(dataset: str, seed: int, known_fraction: float, args: argparse.Namespace) -> dict:
    """Train with a fraction of ATAC labels; return accuracy on the hidden ATAC cells."""
    from conaae_scverse import ConAAE

    key = common.LABEL_KEYS[dataset]
    if dataset == "simulated":
        mdata = common.load_dataset(dataset, n_cells=args.sim_cells, random_state=seed)
    else:
        mdata = common.load_dataset(dataset, args.data_dir)
    atac = mdata.mod["atac"].obs
    truth = atac[key].astype(str).to_numpy()
    known = np.random.default_rng(seed).random(len(atac)) < known_fraction
    atac[key] = atac[key].where(known)
    ConAAE.setup_mudata(mdata, labels_key=key)
    model = ConAAE(mdata, seed=seed)
    start = time.perf_counter()
    train_kwargs = {"max_epochs": 2} if args.quick else {}
    model.train(accelerator="cpu", enable_progress_bar=False, **train_kwargs)
    seconds = time.perf_counter() - start
    predicted = np.asarray(model.predict(modality="atac"), dtype=str)
    hidden = ~known
    return {
        "dataset": dataset,
        "seed": seed,
        "known_fraction": known_fraction,
        "hidden_cells": int(hidden.sum()),
        "accuracy": float(np.mean(predicted[hidden] == truth[hidden])),
        "train_s": seconds,
    }


def render(results: list[dict], args: argparse.Namespace) -> str:
    rows = []
    for dataset in args.datasets:
        for name, fraction in SETTINGS.items():
            runs = [
                r for r in results if r["dataset"] == dataset and r["known_fraction"] == fraction
            ]
            accuracies = [r["accuracy"] for r in runs]
            mean, sd = common.mean_sd(accuracies)
            rows.append(
                [
                    dataset,
                    name,
                    common.fmt(mean, sd, percent=True, digits=1),
                    " ".join(f"{a:.2f}" for a in accuracies),
                    f"{sum(a >= 0.9 for a in accuracies)} / {len(accuracies)}",
                ]
            )
    table = common.markdown_table(
        ["dataset", "setting", "accuracy on hidden ATAC labels", "per seed", "seeds >= 90 %"],
        rows,
    )
    note = (
        f"Seeds 0-{args.seeds - 1}; default model and training; CPU, {args.threads} torch "
        "thread(s). Accuracy of `ConAAE.predict` on the ATAC cells whose labels were hidden."
        + (" QUICK MODE: smoke test, numbers meaningless." if args.quick else "")
    )
    return "\n\n".join(["# Label transfer (benchmarks/label_transfer.py)", note, table])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["simulated", "snare"])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--sim-cells", type=int, default=1200)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 1 seed, 2 epochs, 300 simulated cells"
    )
    parser.add_argument("--out-dir", type=Path, default=common.DEFAULT_RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.quick:
        args.sim_cells, args.seeds = 300, 1
    common.quiet()
    import torch

    torch.set_num_threads(args.threads)
    results = []
    for dataset in args.datasets:
        for fraction in SETTINGS.values():
            for seed in range(args.seeds):
                result = run(dataset, seed, fraction, args)
                results.append(result)
                print(
                    f"  {dataset} known={fraction:.2f} seed {seed}: accuracy "
                    f"{result['accuracy']:.3f} ({result['train_s']:.0f} s)",
                    flush=True,
                )
    text = render(results, args)
    print(text)
    common.write_report(args, "label_transfer", text, {"results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
