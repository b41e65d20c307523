"""Cross-modal anchors from peak-gene links: which RNA cell resembles which ATAC cell.

The label prior of :mod:`._label_prior` says which population an ATAC cell belongs to; it
says nothing about where inside that population the cell sits. Seurat v3 finds *anchors*:
pairs of an RNA and an ATAC cell that are mutual nearest neighbours in the canonical
correlation space of RNA expression and ATAC gene activity. Pulling the latents of anchor
pairs together aligns the modalities within populations as well as between them. Anchors are
inferred from the features; no cell pairing is read.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

#: Neighbours searched on each side (Seurat's ``k.anchor``).
ANCHOR_NEIGHBORS = 5


def mutual_nearest_pairs(
    rna: np.ndarray, atac: np.ndarray, k: int = ANCHOR_NEIGHBORS
) -> np.ndarray:
    """Pairs of rows that are among each other's ``k`` nearest neighbours across modalities.

    Parameters
    ----------
    rna, atac
        Embeddings of RNA and ATAC cells in one space, shapes (n, d) and (m, d).
    k
        Neighbours searched in the other modality, for every cell.

    Returns
    -------
    Integer array of shape (n_pairs, 2): an RNA row and an ATAC row per pair.
    """
    forward = NearestNeighbors(n_neighbors=min(k, len(atac))).fit(atac).kneighbors_graph(rna)
    backward = NearestNeighbors(n_neighbors=min(k, len(rna))).fit(rna).kneighbors_graph(atac)
    mutual = forward.multiply(backward.T).tocoo()  # rna x atac, 1 where both directions hold
    order = np.lexsort((mutual.col, mutual.row))
    return np.column_stack([mutual.row[order], mutual.col[order]]).astype(np.int64)


def label_consistent(
    pairs: np.ndarray, labels_rna: np.ndarray, labels_atac: np.ndarray
) -> np.ndarray:
    """Keep the pairs whose two cells carry the same label code (neither -1).

    The labelled modality's labels and the other's prior labels disagree where an anchor
    crosses populations; such an anchor would pull a cell into the wrong one.
    """
    first, second = labels_rna[pairs[:, 0]], labels_atac[pairs[:, 1]]
    return pairs[(first == second) & (first >= 0)]
