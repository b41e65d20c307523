"""How much label information does each modality carry on its own?

A supervised linear classifier (logistic regression on log1p-transformed, standardised
features), trained and scored by stratified 5-fold cross-validation within one modality. It
bounds what an alignment can reach on label-based metrics: if ATAC alone predicts the label of
an ATAC cell with accuracy a, then an ATAC cell's label is hard to read from its position in
any shared space beyond roughly a, and the paper's integration accuracy (does the matched RNA
cell have the ATAC cell's label?) is limited accordingly.

Examples
--------
python benchmarks/label_ceiling.py
python benchmarks/label_ceiling.py --datasets sci_car
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common


def cross_validated_accuracy(matrix, labels: np.ndarray, *, folds: int, seed: int) -> float:
    """Mean accuracy of logistic regression over stratified folds."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    values = matrix.toarray() if sparse.issparse(matrix) else np.asarray(matrix)
    values = np.log1p(np.clip(values, 0, None)) if values.min() >= 0 else values
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(model, values, labels, cv=splits).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["sci_car", "snare", "bmmc"])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke test: 300 cells")
    parser.add_argument("--out-dir", type=Path, default=common.DEFAULT_RESULTS_DIR)
    args = parser.parse_args(argv)
    common.quiet()
    rows, results = [], []
    for dataset in args.datasets:
        mdata = common.load_dataset(dataset, args.data_dir)
        if args.quick:
            mdata = common.subsample_pairs(mdata, 300, seed=args.seed)
        key = common.LABEL_KEYS[dataset]
        for modality in ("rna", "atac"):
            adata = mdata.mod[modality]
            labels = adata.obs[key].astype(str).to_numpy()
            accuracy = cross_validated_accuracy(adata.X, labels, folds=args.folds, seed=args.seed)
            majority = float(np.unique(labels, return_counts=True)[1].max() / len(labels))
            results.append(
                {
                    "dataset": dataset,
                    "modality": modality,
                    "accuracy": accuracy,
                    "majority": majority,
                }
            )
            rows.append([dataset, modality, f"{100 * accuracy:.1f}", f"{100 * majority:.1f}"])
    table = common.markdown_table(
        ["dataset", "modality", "label accuracy, 5-fold CV (%)", "majority class (%)"], rows
    )
    note = (
        "Logistic regression (C=0.1) on log1p + z-scored features of one modality, stratified "
        f"{args.folds}-fold cross-validation, seed {args.seed}."
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


if __name__ == "__main__":
    sys.exit(main())
