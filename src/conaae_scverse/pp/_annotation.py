"""Read gene coordinates from a BED, GTF or GFF3 file or a table, into one gene table.

Every reader returns the same table: one row per gene, in file order, with the columns of
:data:`GENE_COLUMNS` and 0-based, half-open coordinates (BED and :mod:`pyranges`
convention: a gene on bases 1-100 of a GTF is ``start=0, end=100``).
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyranges as pr

logger = logging.getLogger(__name__)

#: Columns of the gene table returned by :func:`read_gene_annotation`.
GENE_COLUMNS = ("chrom", "start", "end", "strand", "gene")

#: Accepted column names, in order of preference, for each coordinate of a table.
CHROM_ALIASES = ("chrom", "chr", "seqnames", "Chromosome", "chromosome", "seqname")
START_ALIASES = ("start", "chromStart", "Start")
END_ALIASES = ("end", "chromEnd", "End")
STRAND_ALIASES = ("strand", "Strand")
#: Gene-name columns tried, in order, when ``gene_name_column`` is not given.
GTF_NAME_COLUMNS = ("gene_name", "gene_id")
GFF3_NAME_COLUMNS = ("gene_name", "Name", "gene_id", "ID")
TABLE_NAME_COLUMNS = ("gene_name", "gene", "name", "Name", "gene_symbol", "gene_id")

#: The six standard BED columns this module reads; further columns are kept by name.
_BED_COLUMNS = ("chrom", "start", "end", "name", "score", "strand")
_BED_SUFFIXES = (".bed",)
_GTF_SUFFIXES = (".gtf",)
_GFF3_SUFFIXES = (".gff", ".gff3")
_STRANDS = {"+": "+", "-": "-", "1": "+", "-1": "-", "+1": "+"}


def find_column(columns: Sequence[str], aliases: Sequence[str]) -> str | None:
    """First of ``aliases`` that is one of ``columns``, or ``None``."""
    present = set(columns)
    return next((name for name in aliases if name in present), None)


def chrom_key(chroms: pd.Series | pd.Index | np.ndarray) -> np.ndarray:
    """Chromosome names reduced to a key that matches UCSC and Ensembl spellings.

    The ``chr`` prefix is dropped (case-insensitive) and the mitochondrion ``M`` becomes
    ``MT``, so ``chr1`` matches ``1`` and ``chrM`` matches ``MT``.
    """
    keys = pd.Series(np.asarray(chroms, dtype=object)).astype(str)
    keys = keys.str.replace(r"^chr", "", case=False, regex=True)
    return keys.where(keys != "M", "MT").to_numpy(dtype=object)


def read_gene_annotation(
    annotation: str | Path | pd.DataFrame | pr.PyRanges,
    *,
    gene_name_column: str | None = None,
) -> pd.DataFrame:
    """Gene coordinates from a file or a table, one row per gene.

    Parameters
    ----------
    annotation
        One of

        - a path to a BED file (``.bed``, or ``.bed.gz``) with at least six tab-separated
          columns ``chrom start end name score strand``; comment lines starting with ``#``
          (the last one is read as a header naming any further columns), ``track`` and
          ``browser`` lines before the data are skipped;
        - a path to a GTF (``.gtf``) or GFF3 (``.gff``, ``.gff3``) file, plain or gzipped,
          read with :func:`pyranges.read_gtf` / :func:`pyranges.read_gff3`, of which the
          rows with feature ``gene`` are kept;
        - a :class:`pandas.DataFrame` (or :class:`pyranges.PyRanges`) with chromosome,
          start, end, strand and gene-name columns in 0-based, half-open coordinates
          (column names as in :data:`CHROM_ALIASES`, :data:`START_ALIASES`,
          :data:`END_ALIASES`, :data:`STRAND_ALIASES`).
    gene_name_column
        Column that names the genes. By default ``name`` (column 4) of a BED file,
        ``gene_name`` falling back to ``gene_id`` for a GTF, ``gene_name``, ``Name``,
        ``gene_id`` or ``ID`` for a GFF3, and the first of :data:`TABLE_NAME_COLUMNS` of
        a table. Pass e.g. ``"gene_id"`` (GTF) or ``"Ensembl_ID"`` (a BED with that header)
        to name genes by Ensembl ID.

    Returns
    -------
    pandas.DataFrame
        Columns ``chrom`` (str), ``start``, ``end`` (int64, 0-based half-open), ``strand``
        (``"+"``, ``"-"`` or ``"."``) and ``gene`` (str), in the order of the input; rows
        without a gene name are dropped. ``attrs["gene_name_column"]`` holds the column used.
    """
    if isinstance(annotation, pr.PyRanges):
        return _from_table(annotation.df, gene_name_column, TABLE_NAME_COLUMNS, "PyRanges")
    if isinstance(annotation, pd.DataFrame):
        return _from_table(annotation, gene_name_column, TABLE_NAME_COLUMNS, "DataFrame")
    if not isinstance(annotation, str | Path):
        msg = (
            f"annotation must be a path to a BED, GTF or GFF3 file or a pandas DataFrame, "
            f"got {type(annotation).__name__}."
        )
        raise TypeError(msg)
    path = Path(annotation)
    if not path.is_file():
        msg = f"Annotation file {str(path)!r} does not exist. Pass the path of a BED/GTF/GFF3."
        raise FileNotFoundError(msg)
    suffix = path.name.lower().removesuffix(".gz")
    if suffix.endswith(_BED_SUFFIXES):
        table = _read_bed(path)
        return _from_table(table, gene_name_column, ("name",), "BED file")
    if suffix.endswith(_GTF_SUFFIXES):
        table = pr.read_gtf(str(path), as_df=True)
        return _genes_of_gff(table, gene_name_column, GTF_NAME_COLUMNS, "GTF file")
    if suffix.endswith(_GFF3_SUFFIXES):
        table = pr.read_gff3(str(path), as_df=True)
        return _genes_of_gff(table, gene_name_column, GFF3_NAME_COLUMNS, "GFF3 file")
    msg = (
        f"Cannot tell the format of annotation file {path.name!r} from its name. Name it "
        "*.bed, *.gtf, *.gff or *.gff3 (optionally followed by .gz), or read it into a "
        "DataFrame with chrom/start/end/strand/gene_name columns and pass that."
    )
    raise ValueError(msg)


def _read_bed(path: Path) -> pd.DataFrame:
    """Read a BED file: six standard columns, then any further ones named by the header."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    n_skip, header = 0, None
    with opener(path, "rt") as handle:
        for line in handle:
            if line.startswith("#"):
                header = line.lstrip("#").rstrip("\n").split("\t")
            elif not line.startswith(("track", "browser")) and line.strip():
                break
            n_skip += 1
    table = pd.read_csv(
        path, sep="\t", header=None, skiprows=n_skip, dtype={0: str, 3: str, 5: str}
    )
    if table.shape[1] < len(_BED_COLUMNS):
        msg = (
            f"BED file {path.name!r} has {table.shape[1]} columns; linking peaks to genes "
            "needs at least 6 (chrom start end name score strand) for the gene name and "
            "strand. Add them, or pass a DataFrame with chrom/start/end/strand/gene_name."
        )
        raise ValueError(msg)
    extra = [f"column_{j + 1}" for j in range(len(_BED_COLUMNS), table.shape[1])]
    if header is not None and len(header) == table.shape[1]:
        extra = [name.strip() or default for name, default in zip(header[6:], extra, strict=True)]
    table.columns = [*_BED_COLUMNS, *extra]
    return table


def _genes_of_gff(
    table: pd.DataFrame, gene_name_column: str | None, defaults: Sequence[str], source: str
) -> pd.DataFrame:
    """Rows of feature ``gene`` of a GTF/GFF3 table read by pyranges."""
    genes = table[table["Feature"].astype(str) == "gene"]
    if genes.empty:
        features = sorted(table["Feature"].astype(str).unique())[:10]
        msg = (
            f"The {source} has no rows with feature 'gene' (features found: {features}). Use "
            "an annotation with gene records (e.g. GENCODE or Ensembl GTF), or build a "
            "DataFrame of gene coordinates with chrom/start/end/strand/gene_name and pass it."
        )
        raise ValueError(msg)
    if gene_name_column is None and len(defaults) > 1:
        # Fill a missing gene name from the next attribute (e.g. gene_name -> gene_id).
        present = [name for name in defaults if name in genes.columns]
        if present:
            names = genes[present[0]]
            for fallback in present[1:]:
                names = names.fillna(genes[fallback])
            genes = genes.assign(**{present[0]: names})
    return _from_table(genes, gene_name_column, defaults, source)


def _from_table(
    table: pd.DataFrame, gene_name_column: str | None, defaults: Sequence[str], source: str
) -> pd.DataFrame:
    columns = [str(c) for c in table.columns]
    found = {
        "chrom": find_column(columns, CHROM_ALIASES),
        "start": find_column(columns, START_ALIASES),
        "end": find_column(columns, END_ALIASES),
        "strand": find_column(columns, STRAND_ALIASES),
    }
    if gene_name_column is not None:
        if gene_name_column not in columns:
            msg = (
                f"gene_name_column={gene_name_column!r} is not a column of the annotation "
                f"{source} (columns: {columns}). Pass one of those."
            )
            raise KeyError(msg)
        found["gene"] = gene_name_column
    else:
        found["gene"] = find_column(columns, defaults)
    missing = [key for key, name in found.items() if name is None]
    if missing:
        msg = (
            f"The annotation {source} has no column for {missing} (columns: {columns}). "
            f"Name the columns chrom/start/end/strand and the gene name one of "
            f"{list(defaults)}, or pass gene_name_column=."
        )
        raise ValueError(msg)
    genes = pd.DataFrame(
        {
            "chrom": table[found["chrom"]].astype(str).to_numpy(dtype=object),
            "start": pd.to_numeric(table[found["start"]], errors="coerce").to_numpy(),
            "end": pd.to_numeric(table[found["end"]], errors="coerce").to_numpy(),
            "strand": table[found["strand"]].astype(str).str.strip().map(_STRANDS).to_numpy(),
            "gene": table[found["gene"]].to_numpy(dtype=object),
        }
    )
    genes = genes[pd.notna(genes["gene"])].reset_index(drop=True)
    genes["gene"] = genes["gene"].astype(str)
    bad = genes["start"].isna() | genes["end"].isna() | (genes["start"] >= genes["end"])
    bad |= genes["start"] < 0
    if bad.any():
        examples = genes.loc[bad, ["gene", "start", "end"]].head(3).to_dict("records")
        msg = (
            f"{int(bad.sum())} genes of the annotation {source} have missing or invalid "
            f"coordinates (need 0 <= start < end), e.g. {examples}. Fix or drop those rows."
        )
        raise ValueError(msg)
    genes["start"] = genes["start"].astype(np.int64)
    genes["end"] = genes["end"].astype(np.int64)
    genes["strand"] = genes["strand"].fillna(".")
    genes.attrs["gene_name_column"] = found["gene"]
    return genes
