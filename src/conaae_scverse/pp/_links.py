"""Link ATAC peaks to genes by genomic coordinates, and sum peak counts into gene activities."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import pyranges as pr
from scipy import sparse as sp

from .._data import layer_names
from ._annotation import chrom_key, read_gene_annotation
from ._peaks import read_peak_coordinates

logger = logging.getLogger(__name__)

#: Default ``distal_scale`` as a fraction of ``distal``: the weight falls to exp(-3) ~ 0.05
#: at the edge of the distal window.
DISTAL_SCALE_FRACTION = 1 / 3
#: Below this fraction of the requested ``genes`` found in the annotation, warn.
_MIN_FOUND_FRACTION = 0.5


def link_peaks_to_genes(
    peaks: ad.AnnData | pd.DataFrame | Sequence[str],
    annotation: str | Path | pd.DataFrame | pr.PyRanges,
    *,
    genes: Sequence[str] | None = None,
    promoter: int | tuple[int, int] = 2000,
    gene_body: bool = True,
    distal: int = 0,
    distal_scale: float | None = None,
    gene_name_column: str | None = None,
) -> ad.AnnData:
    """Peak-to-gene link matrix from the genomic coordinates of peaks and genes.

    A peak is linked to a gene with weight 1 when it overlaps the gene's promoter or, if
    ``gene_body``, its body (the Signac/ArchR gene-activity regions: gene body plus 2 kb
    upstream of the TSS by default). With ``distal > 0``, peaks near but outside that region
    are linked too, with a weight that decays exponentially with their distance.

    Coordinates are 0-based and half-open, as in BED files: ``[start, end)`` covers bases
    ``start`` to ``end - 1``. Peak names and columns are read in that convention (as Cell
    Ranger's ``peaks.bed`` and peak names are written); GTF/GFF3 files (1-based, closed) are
    converted on reading. For a gene on ``[start, end)``:

    - the TSS is base ``start`` on the ``+`` strand and base ``end - 1`` on the ``-``
      strand (genes without a strand are treated as ``+``, with a warning);
    - the promoter is the TSS base, ``upstream`` bases upstream of it and ``downstream``
      bases downstream of it: ``[tss - upstream, tss + downstream + 1)`` on ``+``,
      ``[tss - downstream, tss + upstream + 1)`` on ``-`` (clipped at 0);
    - the linked region is the promoter, joined with the body ``[start, end)`` if
      ``gene_body`` (one interval, since the promoter holds the TSS);
    - a peak sharing at least one base with the linked region has distance ``d = 0`` and
      weight 1; otherwise ``d`` is the distance in bases between the nearest bases of the
      peak and the region (1 for a peak that abuts it), and if ``d <= distal`` the weight
      is ``exp(-d / distal_scale)``.

    Chromosomes are matched with and without the ``chr`` prefix (``chr1`` matches ``1``,
    ``chrM`` matches ``MT``), so UCSC-style peaks can be linked with an Ensembl annotation.
    The annotation must be of the same genome build as the peaks.

    Parameters
    ----------
    peaks
        The peaks, in one of three forms:

        - an ATAC :class:`~anndata.AnnData` (cells x peaks): its ``var_names`` name the
          peaks, and the coordinates come from ``var`` columns (chromosome: ``chrom``,
          ``chr``, ``seqnames`` or ``Chromosome``; start: ``start``, ``chromStart`` or
          ``Start``; end: ``end``, ``chromEnd`` or ``End``) when all three are present, else
          from the names;
        - a :class:`pandas.DataFrame` with such columns (its index names the peaks; a
          default ``RangeIndex`` gives names ``chrom:start-end``), or without them, whose
          index names are parsed;
        - a sequence of peak names of the forms ``chr1:100-200``, ``chr1-100-200`` or
          ``chr1_100_200`` (the ``chr`` prefix is optional).
    annotation
        Gene coordinates: a path to a BED file (at least 6 columns ``chrom start end name
        score strand``, ``#`` header lines allowed, extra columns kept by header name), a
        GTF or GFF3 file (plain or gzipped; rows of feature ``gene`` are used), or a
        :class:`pandas.DataFrame` / :class:`pyranges.PyRanges` with chromosome, start, end
        (0-based half-open), strand and gene-name columns. When a gene name occurs more than
        once, its first row is used and the others are ignored.
    genes
        Gene names that make up, in this order, the gene axis of the result, e.g. the RNA
        modality's ``var_names``. Names absent from the annotation get all-zero columns; a
        warning is given when fewer than half are found. By default all genes of the
        annotation, in annotation order.
    promoter
        Promoter size in bases: ``upstream`` (an int, the TSS base and that many bases
        upstream of it) or ``(upstream, downstream)``; e.g. ``(1000, 100)`` is Cell Ranger
        ARC's promoter and ``(2000, 100)`` ArchR's.
    gene_body
        Whether peaks overlapping the gene body are linked as well as promoter peaks.
    distal
        Largest distance in bases from the linked region of a distal link; 0 (default)
        links no distal peaks.
    distal_scale
        Length scale in bases of the distal weight ``exp(-d / distal_scale)``. By default
        ``distal / 3``, so the weight falls from ~1 next to the region to exp(-3) ~ 0.05 at
        ``d = distal``.
    gene_name_column
        Annotation column that names genes; by default ``name`` of a BED file and
        ``gene_name`` (falling back to ``gene_id``) of a GTF. Pass ``"gene_id"`` (GTF) or
        ``"Ensembl_ID"`` (a BED with that header) to match Ensembl IDs in ``genes``.

    Returns
    -------
    anndata.AnnData
        The links, of shape (n_peaks, n_genes): ``X`` a float32
        :class:`scipy.sparse.csr_matrix` of link weights (1 for promoter and body links,
        ``exp(-d / distal_scale)`` for distal ones, 0 for no link); ``obs_names`` the peak
        names in the input order, with ``obs`` columns ``chrom``, ``start``, ``end``;
        ``var_names`` the gene names, with ``var`` columns ``chrom``, ``start``, ``end``,
        ``strand`` of the genes (missing for genes not in the annotation);
        ``uns["params"]`` the settings used.

    Examples
    --------
    >>> import conaae_scverse as ca
    >>> links = ca.pp.link_peaks_to_genes(
    ...     mdata.mod["atac"], "genes.hg38.bed", genes=mdata.mod["rna"].var_names
    ... )
    >>> activity = ca.pp.gene_activity(mdata.mod["atac"], links)
    """
    upstream, downstream = _promoter_window(promoter)
    scale = _check_distal(distal, distal_scale)
    peak_table = read_peak_coordinates(peaks)
    gene_table = read_gene_annotation(annotation, gene_name_column=gene_name_column)
    if gene_table.empty:
        msg = "The annotation has no genes. Pass a BED/GTF/GFF3 file or table with gene rows."
        raise ValueError(msg)
    name_column = str(gene_table.attrs.get("gene_name_column", ""))
    unstranded = gene_table["strand"] == "."
    if unstranded.any():
        warnings.warn(
            f"{int(unstranded.sum())} genes of the annotation have no strand (e.g. "
            f"{gene_table.loc[unstranded, 'gene'].head(3).tolist()}); their TSS is taken to "
            "be their start, as on the + strand.",
            UserWarning,
            stacklevel=2,
        )
    duplicated = gene_table["gene"].duplicated(keep="first")
    if duplicated.any():
        logger.info(
            "%d annotation rows repeat a gene name (e.g. %s); the first row of each is used.",
            int(duplicated.sum()),
            gene_table.loc[duplicated, "gene"].head(3).tolist(),
        )
        gene_table = gene_table[~duplicated].reset_index(drop=True)

    gene_names, rows = _gene_axis(gene_table, genes)
    var = _gene_var(gene_table, gene_names, rows)
    present = np.flatnonzero(rows >= 0)
    linked = gene_table.iloc[rows[present]]
    starts, ends = _linked_regions(linked, upstream, downstream, gene_body=gene_body)
    peak_idx, region_idx, distance = _nearby_pairs(
        peak_table, chrom_key(linked["chrom"]), starts, ends, max_distance=distal
    )
    weights = np.ones(len(distance))
    distant = distance > 0  # only when distal > 0, and then scale > 0
    weights[distant] = np.exp(-distance[distant] / scale)
    matrix = sp.csr_matrix(
        (weights.astype(np.float32), (peak_idx, present[region_idx])),
        shape=(len(peak_table), len(gene_names)),
        dtype=np.float32,
    )
    logger.info(
        "Linked %d of %d peaks to %d of %d genes (%d links, %d distal).",
        int(np.unique(peak_idx).size),
        len(peak_table),
        int(np.unique(region_idx).size),
        len(gene_names),
        matrix.nnz,
        int((distance > 0).sum()),
    )
    params: dict[str, Any] = {
        "annotation": str(annotation)
        if isinstance(annotation, str | Path)
        else f"<{type(annotation).__name__}>",
        "promoter": [upstream, downstream],
        "gene_body": bool(gene_body),
        "distal": int(distal),
        "distal_scale": float(scale),
        "gene_name_column": name_column,
    }
    return ad.AnnData(X=matrix, obs=peak_table, var=var, uns={"params": params})


def gene_activity(
    adata_atac: ad.AnnData, links: ad.AnnData, *, layer: str | None = None
) -> ad.AnnData:
    """Gene activities of cells: ATAC counts summed over the peaks linked to each gene.

    Computes ``counts @ links.X``: the activity of a gene in a cell is the sum of the cell's
    counts in the gene's peaks, each weighted by its link weight. ``adata_atac`` is not
    modified.

    Parameters
    ----------
    adata_atac
        ATAC data, cells x peaks. Its ``var_names`` must all be peaks of ``links``
        (``links.obs_names``): links are matched by name, so their order may differ, and
        links of peaks not in ``adata_atac`` (e.g. filtered out since) are ignored.
    links
        Peak-to-gene links from :func:`link_peaks_to_genes`, peaks x genes.
    layer
        Layer of ``adata_atac`` holding the counts; by default ``X``.

    Returns
    -------
    anndata.AnnData
        Cells x genes float32 activities: ``X`` a :class:`scipy.sparse.csr_matrix` when the
        counts are sparse, else a :class:`numpy.ndarray`; ``obs`` a copy of
        ``adata_atac.obs``, ``var`` a copy of ``links.var``.

    Examples
    --------
    >>> links = ca.pp.link_peaks_to_genes(atac, "genes.hg38.bed", genes=rna.var_names)
    >>> activity = ca.pp.gene_activity(atac, links)
    """
    if not isinstance(adata_atac, ad.AnnData) or not isinstance(links, ad.AnnData):
        msg = (
            f"gene_activity takes two AnnData objects (ATAC cells x peaks, links peaks x "
            f"genes), got {type(adata_atac).__name__} and {type(links).__name__}."
        )
        raise TypeError(msg)
    if layer is None:
        counts = adata_atac.X
        source = "adata_atac.X"
    elif layer in adata_atac.layers:
        counts = adata_atac.layers[layer]
        source = f"adata_atac.layers[{layer!r}]"
    else:
        msg = (
            f"layer={layer!r} is not a layer of the ATAC AnnData (layers: "
            f"{layer_names(adata_atac)}). Pass one of those, or layer=None for X."
        )
        raise KeyError(msg)
    if counts is None:
        msg = "The ATAC AnnData has no X. Pass layer= naming the layer that holds the counts."
        raise ValueError(msg)
    weights = _weights_for(adata_atac.var_names, links)
    if sp.issparse(counts):
        activity = sp.csr_matrix(counts, dtype=np.float32) @ weights
        activity = sp.csr_matrix(activity, dtype=np.float32)
    else:
        dense = np.asarray(counts, dtype=np.float32)
        activity = np.asarray(weights.T @ dense.T, dtype=np.float32).T
        activity = np.ascontiguousarray(activity)
    logger.info("Gene activity of %d genes from %s.", links.n_vars, source)
    return ad.AnnData(X=activity, obs=adata_atac.obs.copy(), var=links.var.copy())


def _weights_for(peak_names: pd.Index, links: ad.AnnData) -> sp.csr_matrix:
    """Rows of the link matrix in the order of ``peak_names``."""
    weights = sp.csr_matrix(links.X, dtype=np.float32)
    link_names = pd.Index(links.obs_names)
    if link_names.equals(pd.Index(peak_names)):
        return weights
    if not link_names.is_unique:
        msg = (
            "The peak names of the links (links.obs_names) are not unique, and not the ATAC "
            "var_names in the same order, so peaks cannot be matched by name. Compute the "
            "links from the ATAC AnnData itself: link_peaks_to_genes(adata_atac, ...)."
        )
        raise ValueError(msg)
    rows = link_names.get_indexer(peak_names)
    missing = rows < 0
    if missing.any():
        msg = (
            f"{int(missing.sum())} of {len(peak_names)} ATAC peaks have no row in the links "
            f"(e.g. {list(pd.Index(peak_names)[missing][:3])}). Compute the links from the "
            "same peaks: link_peaks_to_genes(adata_atac, ...)."
        )
        raise ValueError(msg)
    logger.info(
        "Matched the %d ATAC peaks to the links by name (%d link rows unused).",
        len(peak_names),
        len(link_names) - int(np.unique(rows).size),
    )
    return weights[rows]


def _promoter_window(promoter: int | tuple[int, int]) -> tuple[int, int]:
    window = (promoter, 0) if np.isscalar(promoter) else tuple(promoter)
    if len(window) != 2 or not all(
        isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 0 for n in window
    ):
        msg = (
            f"promoter={promoter!r} is not a promoter size. Pass a number of bases upstream "
            "of the TSS (e.g. 2000) or a pair (upstream, downstream) of non-negative ints."
        )
        raise ValueError(msg)
    return int(window[0]), int(window[1])


def _check_distal(distal: int, distal_scale: float | None) -> float:
    """``distal_scale``, or its default, after checking both arguments."""
    if isinstance(distal, bool) or not isinstance(distal, int | np.integer) or distal < 0:
        msg = f"distal={distal!r} must be a non-negative int (bases); pass 0 for no distal links."
        raise ValueError(msg)
    if distal_scale is None:
        return distal * DISTAL_SCALE_FRACTION
    if not np.isfinite(distal_scale) or distal_scale <= 0:
        msg = (
            f"distal_scale={distal_scale!r} must be a positive number of bases; pass None "
            f"for the default distal / {round(1 / DISTAL_SCALE_FRACTION)}."
        )
        raise ValueError(msg)
    return float(distal_scale)


def _gene_axis(
    gene_table: pd.DataFrame, genes: Sequence[str] | None
) -> tuple[pd.Index, np.ndarray]:
    """Names of the gene axis and, for each, its row of ``gene_table`` (-1 if absent)."""
    annotated = pd.Index(gene_table["gene"])
    if genes is None:
        return annotated, np.arange(len(annotated))
    if isinstance(genes, str):
        msg = f"genes must be a sequence of gene names, got the string {genes!r}."
        raise TypeError(msg)
    names = pd.Index(np.asarray(genes, dtype=object).astype(str))
    if not names.is_unique:
        repeated = names[names.duplicated()].unique()[:3].tolist()
        msg = (
            f"genes has repeated names (e.g. {repeated}). Pass unique names, e.g. after "
            "rna.var_names_make_unique()."
        )
        raise ValueError(msg)
    rows = annotated.get_indexer(names)
    n_found = int((rows >= 0).sum())
    logger.info("%d of %d genes found in the annotation.", n_found, len(names))
    if len(names) and n_found < _MIN_FOUND_FRACTION * len(names):
        warnings.warn(
            f"Only {n_found} of {len(names)} genes ({n_found / len(names):.0%}) are in the "
            f"annotation (missing e.g. {names[rows < 0][:3].tolist()}); the others get no "
            "links. Check that genes and annotation name genes alike (gene symbols vs Ensembl "
            "IDs: see gene_name_column) and that the annotation is of the same species and "
            "genome build as the peaks.",
            UserWarning,
            stacklevel=3,
        )
    return names, rows


def _gene_var(gene_table: pd.DataFrame, names: pd.Index, rows: np.ndarray) -> pd.DataFrame:
    """``var`` of the links: coordinates of each gene, missing where not annotated."""
    found = rows >= 0
    picked = gene_table.iloc[np.where(found, rows, 0)].reset_index(drop=True)
    var = pd.DataFrame(index=names.copy())
    for column in ("chrom", "start", "end", "strand"):
        if column in ("start", "end"):
            values = pd.array(picked[column].to_numpy(), dtype="Int64")
            values[~found] = pd.NA
            var[column] = values
        else:
            var[column] = pd.Categorical(picked[column].where(found).to_numpy(dtype=object))
    return var


def _linked_regions(
    genes: pd.DataFrame, upstream: int, downstream: int, *, gene_body: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (0-based half-open) of each gene's promoter, joined with its body."""
    start = genes["start"].to_numpy(dtype=np.int64)
    end = genes["end"].to_numpy(dtype=np.int64)
    minus = (genes["strand"] == "-").to_numpy()
    tss = np.where(minus, end - 1, start)
    region_start = np.where(minus, tss - downstream, tss - upstream)
    region_end = np.where(minus, tss + upstream + 1, tss + downstream + 1)
    if gene_body:
        region_start = np.minimum(region_start, start)
        region_end = np.maximum(region_end, end)
    return np.maximum(region_start, 0), region_end


def _nearby_pairs(
    peaks: pd.DataFrame,
    region_keys: np.ndarray,
    region_start: np.ndarray,
    region_end: np.ndarray,
    *,
    max_distance: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(peak, region, distance) of every peak within ``max_distance`` bases of a region.

    The distance is 0 for a peak sharing a base with the region, else the number of bases
    from the region's nearest base to the peak's nearest base.
    """
    empty = np.zeros(0, dtype=np.int64)
    peak_keys = chrom_key(peaks["chrom"])
    shared = np.intersect1d(peak_keys.astype(str), region_keys.astype(str))
    if len(peaks) and len(region_keys) and shared.size == 0:
        warnings.warn(
            f"No peak lies on a chromosome of the annotation (peaks on e.g. "
            f"{pd.unique(peaks['chrom'])[:3].tolist()}), so nothing is linked. Check that the "
            "peaks and the annotation use the same chromosome names and genome build.",
            UserWarning,
            stacklevel=3,
        )
    if shared.size == 0:
        return empty, empty, empty
    peak_start = peaks["start"].to_numpy(dtype=np.int64)
    peak_end = peaks["end"].to_numpy(dtype=np.int64)
    left = pr.PyRanges(
        pd.DataFrame(
            {
                "Chromosome": peak_keys,
                "Start": peak_start,
                "End": peak_end,
                "peak": np.arange(len(peaks)),
            }
        )
    )
    right = pr.PyRanges(
        pd.DataFrame(
            {
                "Chromosome": region_keys,
                "Start": np.maximum(region_start - max_distance, 0),
                "End": region_end + max_distance,
                "region": np.arange(len(region_keys)),
            }
        )
    )
    joined = left.join(right)
    if len(joined) == 0:
        return empty, empty, empty
    pairs = joined.df
    peak = pairs["peak"].to_numpy(dtype=np.int64)
    region = pairs["region"].to_numpy(dtype=np.int64)
    distance = np.maximum.reduce(
        [
            np.zeros(len(peak), dtype=np.int64),
            region_start[region] - peak_end[peak] + 1,
            peak_start[peak] - region_end[region] + 1,
        ]
    )
    keep = distance <= max_distance
    return peak[keep], region[keep], distance[keep]
