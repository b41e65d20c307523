"""Genomic coordinates of ATAC peaks, from ``var`` columns or from the peak names."""

from __future__ import annotations

import re
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from ._annotation import CHROM_ALIASES, END_ALIASES, START_ALIASES, find_column

#: Examples of the peak-name forms that :func:`read_peak_coordinates` reads.
PEAK_NAME_FORMS = ("chr1:100-200", "chr1-100-200", "chr1_100_200")
_PEAK_NAME = re.compile(
    r"^(?P<chrom>.+?)"
    r"(?::(?P<s1>\d+)-(?P<e1>\d+)|-(?P<s2>\d+)-(?P<e2>\d+)|_(?P<s3>\d+)_(?P<e3>\d+))$"
)


def read_peak_coordinates(peaks: ad.AnnData | pd.DataFrame | Sequence[str]) -> pd.DataFrame:
    """Peaks as a table indexed by name with int64 columns ``chrom``, ``start``, ``end``."""
    if isinstance(peaks, ad.AnnData):
        table = _from_columns_or_names(peaks.var, "the AnnData's var")
    elif isinstance(peaks, pd.DataFrame):
        table = _from_columns_or_names(peaks, "the DataFrame")
    elif isinstance(peaks, str) or not isinstance(
        peaks, Sequence | np.ndarray | pd.Index | pd.Series
    ):
        msg = (
            f"peaks must be an ATAC AnnData, a DataFrame with chrom/start/end columns or a "
            f"sequence of peak names, got {type(peaks).__name__}."
        )
        raise TypeError(msg)
    else:
        table = _parse_peak_names(pd.Index(np.asarray(peaks, dtype=object).astype(str)))
    bad = (table["start"] < 0) | (table["start"] >= table["end"])
    if bad.any():
        msg = (
            f"{int(bad.sum())} peaks have start < 0 or start >= end (e.g. "
            f"{table.index[bad][:3].tolist()}). Fix their coordinates (0-based, half-open)."
        )
        raise ValueError(msg)
    return table


def _from_columns_or_names(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    columns = [str(c) for c in frame.columns]
    found = {
        "chrom": find_column(columns, CHROM_ALIASES),
        "start": find_column(columns, START_ALIASES),
        "end": find_column(columns, END_ALIASES),
    }
    if all(name is None for name in found.values()):
        return _parse_peak_names(pd.Index(frame.index.astype(str)))
    missing = [key for key, name in found.items() if name is None]
    if missing:
        msg = (
            f"{source} has coordinate columns {[n for n in found.values() if n]} but none for "
            f"{missing}. Add the missing columns (e.g. chrom, start, end), or drop them all "
            "to read the coordinates from the peak names."
        )
        raise ValueError(msg)
    start = pd.to_numeric(frame[found["start"]], errors="coerce")
    end = pd.to_numeric(frame[found["end"]], errors="coerce")
    chrom = frame[found["chrom"]]
    if start.isna().any() or end.isna().any() or chrom.isna().any():
        msg = (
            f"The coordinate columns of {source} have missing or non-numeric values. Fill "
            "them, or drop the columns to read the coordinates from the peak names."
        )
        raise ValueError(msg)
    table = pd.DataFrame(
        {
            "chrom": chrom.astype(str).to_numpy(dtype=object),
            "start": start.to_numpy().astype(np.int64),
            "end": end.to_numpy().astype(np.int64),
        }
    )
    if isinstance(frame.index, pd.RangeIndex):
        names = table["chrom"] + ":" + table["start"].astype(str) + "-" + table["end"].astype(str)
    else:
        names = frame.index.astype(str)
    table.index = pd.Index(names, dtype=object)
    return table


def _parse_peak_names(names: pd.Index) -> pd.DataFrame:
    parts = pd.Series(names, dtype=object).str.extract(_PEAK_NAME)
    bad = parts["chrom"].isna().to_numpy()
    if bad.any():
        msg = (
            f"{int(bad.sum())} of {len(names)} peak names could not be read as genomic "
            f"coordinates, e.g. {names[bad][:5].tolist()}. Accepted forms: "
            f"{', '.join(PEAK_NAME_FORMS)} (0-based half-open, the chr prefix optional). "
            "Rename the peaks, or give the coordinates as var columns chrom, start and end "
            "(or pass a DataFrame with those columns)."
        )
        raise ValueError(msg)
    # Each name matched one form: take its start and end from that form's groups.
    starts = parts[["s1", "s2", "s3"]].to_numpy(dtype=object)
    ends = parts[["e1", "e2", "e3"]].to_numpy(dtype=object)
    form = pd.notna(starts).argmax(axis=1)
    rows = np.arange(len(names))
    return pd.DataFrame(
        {
            "chrom": parts["chrom"].to_numpy(dtype=object),
            "start": starts[rows, form].astype(np.int64),
            "end": ends[rows, form].astype(np.int64),
        },
        index=pd.Index(names, dtype=object),
    )
