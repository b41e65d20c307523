"""All alignment metrics for a MuData in one call."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from .._constants import OUTPUT_KEYS, TRUE_PARTNER_KEY
from .._data import get_modality
from ._alignment import _closer_counts, chance_recall_at_k
from ._labels import integration_accuracy, label_transfer_accuracy
from ._mixing import modality_mixing
from ._pairs import _obs_column, pairs_from_mudata
from ._validation import Metric, as_paired, check_ks, check_metric

if TYPE_CHECKING:
    import anndata as ad
    from mudata import MuData


def _embedding(adata: ad.AnnData, use_rep: str, mod: str) -> np.ndarray:
    if use_rep not in adata.obsm:
        msg = (
            f"mdata.mod[{mod!r}].obsm has no {use_rep!r} (it has {list(adata.obsm)}). Run "
            "model.write_results() first, or pass use_rep= the key of the joint embedding."
        )
        raise KeyError(msg)
    return np.asarray(adata.obsm[use_rep])


def evaluate_alignment(
    mdata: MuData,
    *,
    rna_mod: str = "rna",
    atac_mod: str = "atac",
    use_rep: str = OUTPUT_KEYS.LATENT,
    labels_key: str | None = None,
    partner_key: str = TRUE_PARTNER_KEY,
    ks: Iterable[int] = (1, 5, 10, 20, 50),
    metric: Metric = "l1",
) -> dict[str, float]:
    """Evaluate a joint RNA + ATAC embedding on the cells with a known partner.

    The known pairs come from :func:`pairs_from_mudata`; every metric is computed on the
    paired cells only, RNA cell ``p`` against its partner ATAC cell ``p``.

    Parameters
    ----------
    mdata
        MuData whose modalities hold the joint embedding in ``.obsm[use_rep]``, each of shape
        (n_cells_of_that_modality, d).
    rna_mod
        Name of the RNA modality.
    atac_mod
        Name of the ATAC modality.
    use_rep
        Key of the embedding in both modalities' ``.obsm``.
    labels_key
        Label column present in both modalities' ``.obs``; ``None`` skips the label metrics.
    partner_key
        Column of the RNA ``.obs`` naming each cell's ATAC partner (see
        :func:`pairs_from_mudata`).
    ks
        Neighbourhood sizes for recall@k.
    metric
        Distance of recall@k, label transfer and integration accuracy: ``"l1"`` (the paper's
        text) or ``"l2"`` (its code).

    Returns
    -------
    dict[str, float]
        The scores, by key:

        - ``"n_pairs"``: number of paired cells evaluated;
        - ``"recall@k"`` for each ``k`` in ``ks`` (:func:`recall_at_k`, RNA cells querying ATAC
          cells, with ``metric``) and ``"recall@k_l2"`` (or ``"recall@k_l1"`` when
          ``metric="l2"``) with the other distance;
        - ``"chance@k"``: recall@k of an uninformative embedding, ``k / n_pairs``;
        - ``"foscttm"``: :func:`foscttm` (Euclidean), lower is better;
        - ``"modality_mixing"``: :func:`modality_mixing` (Euclidean, ``k=15``);
        - with ``labels_key``: ``"label_transfer_accuracy"`` (RNA labels to ATAC cells,
          :func:`label_transfer_accuracy`, ``k=5``) and ``"integration_accuracy"``
          (:func:`integration_accuracy`).

    Examples
    --------
    >>> import anndata as ad, mudata as md, numpy as np, pandas as pd
    >>> from conaae_scverse.metrics import evaluate_alignment
    >>> z = np.random.default_rng(0).normal(size=(20, 3))
    >>> obs = pd.DataFrame(index=[f"c{i}" for i in range(20)])
    >>> rna, atac = ad.AnnData(obs=obs), ad.AnnData(obs=obs.copy())
    >>> rna.obsm["X_conaae"], atac.obsm["X_conaae"] = z, z
    >>> scores = evaluate_alignment(md.MuData({"rna": rna, "atac": atac}), ks=(1, 5))
    >>> scores["recall@1"], scores["chance@5"], scores["foscttm"]
    (1.0, 0.25, 0.0)
    """
    check_metric(metric)
    ks_ = check_ks(ks)
    rna = get_modality(mdata, rna_mod, "rna", needs_features=False)
    atac = get_modality(mdata, atac_mod, "atac", needs_features=False)
    z_rna = _embedding(rna, use_rep, rna_mod)
    z_atac = _embedding(atac, use_rep, atac_mod)
    if labels_key is not None:
        labels_rna = _obs_column(rna, labels_key, rna_mod)
        labels_atac = _obs_column(atac, labels_key, atac_mod)
    rna_idx, atac_idx = pairs_from_mudata(
        mdata, rna_mod=rna_mod, atac_mod=atac_mod, partner_key=partner_key
    )
    x, y = as_paired(z_rna[rna_idx], z_atac[atac_idx])
    n = len(x)
    other: Metric = "l2" if metric == "l1" else "l1"
    counts = {m: _closer_counts(x, y, m) for m in (metric, other)}

    scores: dict[str, float] = {"n_pairs": float(n)}
    for k in ks_:
        scores[f"recall@{k}"] = float(np.mean(counts[metric] < k))
    for k in ks_:
        scores[f"recall@{k}_{other}"] = float(np.mean(counts[other] < k))
    for k in ks_:
        scores[f"chance@{k}"] = chance_recall_at_k(n, k)
    if n >= 2:
        back = _closer_counts(y, x, "l2")
        scores["foscttm"] = float((counts["l2"].mean() + back.mean()) / (2 * (n - 1)))
    else:
        scores["foscttm"] = float("nan")
    scores["modality_mixing"] = modality_mixing(x, y, metric="l2")
    if labels_key is not None:
        lab_x, lab_y = labels_rna[rna_idx], labels_atac[atac_idx]
        scores["label_transfer_accuracy"] = label_transfer_accuracy(
            x, lab_x, y, lab_y, metric=metric
        )
        scores["integration_accuracy"] = integration_accuracy(x, lab_x, y, lab_y, metric=metric)
    return scores
