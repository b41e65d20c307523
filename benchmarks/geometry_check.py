"""Can geometry alone tell the populations apart? The bound of the OT label prior.

For each dataset, each modality's own representation (the one the OT label prior uses) gives
one centre per population (true labels, evaluation only); the Gromov-Wasserstein cost of
pairing RNA's populations with ATAC's by a permutation is the squared difference of their
(scaled) centre-distance matrices. If some wrong permutation costs less than the true one, the
two geometries favour a wrong pairing, and no geometric prior can be expected to find the
right one from centres alone. The prior also couples finer clusters with their sizes as
marginals, so unequal population sizes can still tell the populations apart; with equal sizes
(the simulation) nothing is left, and only peak-gene links or a few labels can.

Examples
--------
python benchmarks/geometry_check.py
python benchmarks/geometry_check.py --datasets simulated --seeds 8
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common


def permutation_costs(mdata, key: str, seed: int) -> tuple[float, float, int, float]:
    """GW costs (true pairing, lowest), permutations beating the truth, population size ratio."""
    from scipy.spatial.distance import cdist

    from conaae_scverse import _data
    from conaae_scverse._cell_representation import l2_rows, own_representation

    rng = np.random.default_rng(seed)
    distances = {}
    categories = sorted(mdata.mod["rna"].obs[key].astype(str).unique())
    for mod in ("rna", "atac"):
        matrix = mdata.mod[mod].X
        z = l2_rows(own_representation(matrix, log1p=_data.looks_like_counts(matrix), rng=rng))
        labels = mdata.mod[mod].obs[key].astype(str).to_numpy()
        centres = np.stack([z[labels == c].mean(axis=0) for c in categories])
        d = cdist(centres, centres)
        distances[mod] = d / d.max()
    costs = []
    for perm in itertools.permutations(range(len(categories))):
        order = np.asarray(perm)
        costs.append(((distances["rna"] - distances["atac"][np.ix_(order, order)]) ** 2).sum())
    true = costs[0]  # the identity permutation comes first
    sizes = mdata.mod["rna"].obs[key].astype(str).value_counts()
    better = int(sum(c < true - 1e-12 for c in costs))
    return float(true), float(min(costs)), better, float(sizes.max() / sizes.min())


def _check(task: tuple[str, int, str | None]) -> dict:
    """The costs of one dataset and seed."""
    dataset, seed, data_dir = task
    if dataset == "simulated":
        mdata = common.load_dataset(dataset, n_cells=1200, random_state=seed)
    else:
        mdata = common.load_dataset(dataset, data_dir, random_state=seed)
    true, lowest, better, ratio = permutation_costs(mdata, common.LABEL_KEYS[dataset], seed)
    return {
        "dataset": dataset,
        "seed": seed,
        "true": true,
        "lowest": lowest,
        "better": better,
        "size_ratio": ratio,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["simulated", "snare", "sci_car"])
    common.add_standard_arguments(
        parser, seeds=4, threads=None, quick="smoke test: simulated, 1 seed", data_dir=True
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds = ["simulated"], 1
    common.quiet()
    tasks = [(d, seed, args.data_dir) for d in args.datasets for seed in common.seed_range(args)]
    results = common.run_tasks(_check, tasks, jobs=args.jobs, threads=args.threads)
    rows = [
        [
            r["dataset"],
            str(r["seed"]),
            f"{r['true']:.4f}",
            f"{r['lowest']:.4f}",
            str(r["better"]),
            f"{r['size_ratio']:.2f}",
        ]
        for r in results
    ]
    table = common.markdown_table(
        [
            "dataset",
            "seed",
            "GW cost of the true pairing",
            "lowest cost over permutations",
            "wrong pairings cheaper than the truth",
            "largest / smallest population",
        ],
        rows,
    )
    note = (
        "Population centres in each modality's own representation (as the OT label prior "
        "computes it, rows scaled to unit length); cost = squared difference of the scaled "
        "centre-distance matrices under each permutation of the labels. The real datasets "
        "do not depend on the seed except through the representation's randomised PCA. "
        "Population sizes: RNA label counts." + (" QUICK MODE: smoke test." if args.quick else "")
    )
    common.publish(
        args,
        "geometry_check",
        "Geometry alone: the bound of the OT prior (benchmarks/geometry_check.py)",
        note,
        table,
        {"results": results},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
