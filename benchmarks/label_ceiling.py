"""How much label information does each modality carry on its own?

A supervised linear classifier (logistic regression on log1p-transformed, standardised
features), trained and scored by stratified 5-fold cross-validation within one modality. It
bounds what an alignment can reach on label-based metrics: if ATAC alone predicts the label of
an ATAC cell with accuracy a, then an ATAC cell's label is hard to read from its position in
any shared space beyond roughly a, and the paper's integration accuracy (does the matched RNA
cell have the ATAC cell's label?) is limited accordingly.

The same classifier on each cell's depth alone (log1p of its total counts; modalities of
counts only) says how much of the label sequencing depth carries: where it carries much, a
model that ignores depth (``loss_weights={"depth_invariance": ...}``) loses that signal.

Examples
--------
python benchmarks/label_ceiling.py
python benchmarks/label_ceiling.py --datasets sci_car --seeds 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common


def _classifier_and_values(matrix):
    """The classifier (standardised features, logistic regression) and its input values."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    values = matrix.toarray() if sparse.issparse(matrix) else np.asarray(matrix)
    values = np.log1p(np.clip(values, 0, None)) if values.min() >= 0 else values
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    return model, values


def cross_validated_accuracy(matrix, labels: np.ndarray, *, folds: int, seed: int) -> float:
    """Mean accuracy of logistic regression over stratified folds."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    model, values = _classifier_and_values(matrix)
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(model, values, labels, cv=splits).mean())


def cross_validated_labels(matrix, labels: np.ndarray, *, folds: int, seed: int) -> np.ndarray:
    """Each cell's label as predicted by the classifier of the fold that left it out."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    model, values = _classifier_and_values(matrix)
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, values, labels, cv=splits)


def depth_alone_accuracy(matrix, labels: np.ndarray, *, folds: int, seed: int) -> float | None:
    """:func:`cross_validated_accuracy` from each cell's total counts; ``None`` if not counts."""
    from conaae_scverse._data import looks_like_counts

    if not looks_like_counts(matrix):
        return None
    totals = np.asarray(matrix.sum(axis=1), dtype=np.float64).reshape(-1, 1)
    return cross_validated_accuracy(totals, labels, folds=folds, seed=seed)


def _ceiling(task: tuple[str, int, argparse.Namespace]) -> list[dict]:
    """Both modalities of one dataset, one seed (folds, and the quick subsample)."""
    dataset, seed, args = task
    mdata = common.load_dataset(dataset, args.data_dir)
    if args.quick:
        mdata = common.subsample_pairs(mdata, 300, seed=seed)
    key = common.LABEL_KEYS[dataset]
    results = []
    for modality in ("rna", "atac"):
        adata = mdata.mod[modality]
        labels = adata.obs[key].astype(str).to_numpy()
        results.append(
            {
                "dataset": dataset,
                "modality": modality,
                "seed": seed,
                "accuracy": cross_validated_accuracy(adata.X, labels, folds=args.folds, seed=seed),
                "depth_accuracy": depth_alone_accuracy(
                    adata.X, labels, folds=args.folds, seed=seed
                ),
                "majority": float(np.unique(labels, return_counts=True)[1].max() / len(labels)),
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["sci_car", "snare", "bmmc", "pbmc"])
    parser.add_argument("--folds", type=int, default=5)
    common.add_standard_arguments(
        parser, threads=None, quick="smoke test: 300 cells", data_dir=True
    )
    args = parser.parse_args(argv)
    common.quiet()
    seeds = common.seed_range(args)
    tasks = [(dataset, seed, args) for dataset in args.datasets for seed in seeds]
    per_task = common.run_tasks(_ceiling, tasks, jobs=args.jobs, threads=args.threads)
    results = [r for pair in per_task for r in pair]
    rows = []
    for dataset in args.datasets:
        for modality in ("rna", "atac"):
            runs = [r for r in results if r["dataset"] == dataset and r["modality"] == modality]
            rows.append(
                [
                    dataset,
                    modality,
                    " ".join(f"{100 * r['accuracy']:.1f}" for r in runs),
                    " ".join(_percent(r.get("depth_accuracy")) for r in runs),
                    " ".join(f"{100 * r['majority']:.1f}" for r in runs),
                ]
            )
    per_seed = " per seed" if len(seeds) > 1 else ""
    table = common.markdown_table(
        [
            "dataset",
            "modality",
            f"label accuracy, 5-fold CV (%){per_seed}",
            f"from depth alone (%){per_seed}",
            f"majority class (%){per_seed}",
        ],
        rows,
    )
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    note = (
        "Logistic regression (C=0.1) on log1p + z-scored features of one modality, stratified "
        f"{args.folds}-fold cross-validation, {seed_text}. From depth alone: the same "
        "classifier on log1p of each cell's total counts (n/a: not counts)."
        + (" QUICK MODE: 300 cells, numbers meaningless." if args.quick else "")
    )
    common.publish(
        args,
        "label_ceiling",
        "Label information per modality (benchmarks/label_ceiling.py)",
        note,
        table,
        {"results": results},
    )
    return 0


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


if __name__ == "__main__":
    sys.exit(main())
