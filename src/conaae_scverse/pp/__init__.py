"""Preprocessing across modalities: link ATAC peaks to genes by genomic coordinates.

:func:`link_peaks_to_genes` builds a peaks x genes link matrix from peak coordinates and a
gene annotation (BED, GTF, GFF3 or a table); :func:`gene_activity` sums a cell's ATAC
counts over the peaks linked to each gene, giving a cells x genes matrix on the RNA
modality's gene axis.
"""

from __future__ import annotations

from ._links import gene_activity, link_peaks_to_genes

__all__ = ["gene_activity", "link_peaks_to_genes"]
