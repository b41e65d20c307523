"""Loaders of the real paired RNA + ATAC datasets used by the Con-AAE paper."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
from scipy import sparse as sp

from .._constants import TRUE_PARTNER_KEY
from ._fetch import (
    REGISTRY,
    SCI_CAR_BARCODES_SHA256,
    barcodes_sha256,
    fetch_dataset_files,
    load_str_list_pickle,
)
from ._utils import build_mudata

logger = logging.getLogger(__name__)

#: Label column of :func:`sci_car_a549`.
TREATMENT_TIME_KEY = "treatment_time"
#: Label column of :func:`snare_seq_cell_lines`.
CELL_LINE_KEY = "cell_line"
#: Integer codes of ``SNAREseq_*_types.txt`` and the cell lines they stand for.
SNARE_CELL_LINES = {1: "H1", 2: "GM12878", 3: "BJ", 4: "K562"}
#: Cell-type names of ``SNAREseq_metadata.txt`` that differ from :data:`SNARE_CELL_LINES`.
_SNARE_METADATA_ALIASES = {"GM": "GM12878"}


def _co_assay_mudata(
    names: pd.Index,
    matrices: dict[str, sp.csr_matrix | np.ndarray],
    label_key: str,
    labels: pd.Categorical,
    provenance: dict[str, str],
) -> md.MuData:
    """MuData of a co-assay: same cells in both modalities, each cell its own partner.

    ``matrices`` maps a feature-name prefix (``"gene"``, ``"peak"``, ...) to the RNA and
    then the ATAC matrix; the files carry no feature names, so they are numbered.
    """
    modalities = []
    for prefix, matrix in matrices.items():
        # Each modality gets its own obs so that editing one never edits the other.
        obs = pd.DataFrame(
            {label_key: labels.copy(), TRUE_PARTNER_KEY: np.asarray(names, dtype=object)},
            index=names.copy(),
        )
        var = pd.DataFrame(index=[f"{prefix}_{j}" for j in range(matrix.shape[1])])
        modalities.append(ad.AnnData(X=matrix, obs=obs, var=var))
    rna, atac = modalities
    return build_mudata(rna, atac, provenance)


def _read_text_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _sci_car_barcodes(paths: dict[str, Path]) -> list[str]:
    if "shared_cells.txt" in paths:  # verified by fetch_dataset_files
        return _read_text_lines(paths["shared_cells.txt"])
    path = paths["shared_cells.pkl"]
    barcodes = load_str_list_pickle(path)
    actual = barcodes_sha256(barcodes)
    if actual != SCI_CAR_BARCODES_SHA256:
        msg = (
            f"The barcode list in {str(path)!r} is not the published one: as text it hashes "
            f"to SHA-256 {actual}, expected {SCI_CAR_BARCODES_SHA256}. Delete the file and "
            "download it again."
        )
        raise ValueError(msg)
    return barcodes


def _load_cells_by_features(path: Path, n_cells: int) -> sp.csr_matrix:
    """Read a scipy ``.npz`` stored features x cells and return cells x features float32."""
    matrix = sp.load_npz(path)
    if matrix.shape[1] != n_cells:
        msg = (
            f"{str(path)!r} has {matrix.shape[1]} columns but the barcode list has "
            f"{n_cells} cells; the files come from different releases. Fetch them again."
        )
        raise ValueError(msg)
    return sp.csr_matrix(matrix.T, dtype=np.float32)


def sci_car_a549(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
) -> md.MuData:
    """Load the sci-CAR co-assay of A549 cells treated with dexamethasone.

    Human lung adenocarcinoma A549 cells treated with dexamethasone for 0, 1 or 3 hours
    and profiled with sci-CAR (Cao et al., Science 2018), restricted to the 1874 cells
    and to the differentially expressed genes and ATAC features selected by the
    cross-modal autoencoders project (Yang et al., Nat. Commun. 2021). This is the main
    real dataset of the Con-AAE paper (which reports 1791 cells for its own processing).
    The treatment time is the label.

    Files are read from ``data_dir/sci_car_a549/`` (or ``$CONAAE_DATA_DIR/sci_car_a549/``)
    and otherwise downloaded. The download publishes the barcode order only as a pickle,
    ``shared_cells.pkl``; it is decoded with an unpickler that refuses every global name
    (so nothing in it can run) and its content is verified against the SHA-256 of the
    text list ``shared_cells.txt``.

    Parameters
    ----------
    data_dir
        Directory containing the ``sci_car_a549/`` subfolder with
        ``diff_expr_shared_cells.npz``, ``diff_atac_shared_cells.npz``,
        ``shared_cells.txt`` and ``GSM3271040_RNA_sciCAR_A549_cell.txt``. Defaults to the
        environment variable ``CONAAE_DATA_DIR``.
    download
        Whether to download the files into ``pooch.os_cache("conaae-scverse")`` if they
        are not found locally.

    Returns
    -------
    MuData with modalities

    - ``"rna"``: 1874 cells x 2613 genes, raw counts as float32 CSR;
    - ``"atac"``: 1874 cells x 815 features, raw counts as float32 CSR.

    Both have the barcodes as obs names (the modalities are paired: same barcode, same
    cell), obs column ``treatment_time`` (categorical ``"0h"``, ``"1h"``, ``"3h"``: 473,
    694 and 707 cells) and ``true_partner`` (each cell's own barcode; for evaluation
    only). The files carry no feature names, so var names are ``gene_0 ..`` and
    ``peak_0 ..``.

    Raises
    ------
    FileNotFoundError
        If the files are not found and ``download=False``.
    ValueError
        If a file does not match its published SHA-256 sum or the files disagree.

    Examples
    --------
    >>> from conaae_scverse.datasets import sci_car_a549
    >>> mdata = sci_car_a549("../shared/data", download=False)  # doctest: +SKIP
    >>> mdata.mod["rna"].obs["treatment_time"].value_counts()  # doctest: +SKIP
    """
    dataset = "sci_car_a549"
    paths = fetch_dataset_files(dataset, data_dir, download=download)
    barcodes = _sci_car_barcodes(paths)
    names = pd.Index(barcodes)
    if not names.is_unique:
        msg = "The sci-CAR barcode list has duplicates; the file is corrupt. Fetch it again."
        raise ValueError(msg)

    rna_x = _load_cells_by_features(paths["diff_expr_shared_cells.npz"], len(names))
    atac_x = _load_cells_by_features(paths["diff_atac_shared_cells.npz"], len(names))

    meta = pd.read_csv(paths["GSM3271040_RNA_sciCAR_A549_cell.txt"], index_col="sample")
    missing = names.difference(meta.index)
    if len(missing) > 0:
        msg = (
            f"{len(missing)} barcodes (e.g. {missing[0]!r}) are missing from the sci-CAR "
            "metadata; the files come from different releases. Fetch them again."
        )
        raise ValueError(msg)
    hours = meta[TREATMENT_TIME_KEY].reindex(names)
    if hours.isna().any():
        msg = (
            f"{int(hours.isna().sum())} sci-CAR cells have no treatment time in the "
            "metadata; the files come from different releases. Fetch them again."
        )
        raise ValueError(msg)
    hour_values = sorted({int(h) for h in hours})
    labels = pd.Categorical(
        [f"{int(h)}h" for h in hours], categories=[f"{h}h" for h in hour_values]
    )

    logger.info("Loaded sci-CAR A549: rna %s, atac %s.", rna_x.shape, atac_x.shape)
    provenance = {
        "name": dataset,
        "citation": (
            "Cao et al., Joint profiling of chromatin accessibility and gene expression in "
            "thousands of single cells, Science 361, 1380-1385 (2018), GEO GSM3271040/"
            "GSM3271041; processed by Yang et al., Multi-domain translation between "
            "single-cell imaging and sequencing data using autoencoders, Nat. Commun. 12, "
            "31 (2021) (MIT licence, Copyright (c) 2020 Karren Yang)."
        ),
        "url": REGISTRY[dataset].base_url,
    }
    return _co_assay_mudata(
        names, {"gene": rna_x, "peak": atac_x}, TREATMENT_TIME_KEY, labels, provenance
    )


def snare_seq_cell_lines(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
) -> md.MuData:
    """Load the SNARE-seq mixture of four human cell lines, as reduced features.

    A mixture of BJ, H1, K562 and GM12878 cells profiled with SNARE-seq (Chen, Lake &
    Zhang, Nat. Biotechnol. 2019), as preprocessed by the SCOT project (Demetci et al.)
    into 10 gene-expression and 19 chromatin-accessibility features per cell: the second
    real dataset of the Con-AAE paper and a common alignment benchmark (SCOT, Pamona,
    UnionCom). The cell line is the label.

    Parameters
    ----------
    data_dir
        Directory containing the ``snare_seq_cell_lines/`` subfolder with
        ``SNAREseq_rna_feat.npy``, ``SNAREseq_atac_feat.npy``, ``SNAREseq_rna_types.txt``,
        ``SNAREseq_atac_types.txt`` and ``SNAREseq_metadata.txt``. Defaults to the
        environment variable ``CONAAE_DATA_DIR``.
    download
        Whether to download the files into ``pooch.os_cache("conaae-scverse")`` if they
        are not found locally.

    Returns
    -------
    MuData with modalities

    - ``"rna"``: 1047 cells x 10 features, dense float32, var names ``rna_feat_0 ..``;
    - ``"atac"``: 1047 cells x 19 features, dense float32, var names ``atac_feat_0 ..``.

    Both have the cell barcodes of ``SNAREseq_metadata.txt`` as obs names (the
    modalities are paired), obs column ``cell_line`` (categorical ``"H1"``,
    ``"GM12878"``, ``"BJ"``, ``"K562"``: 379, 324, 201 and 143 cells) and
    ``true_partner`` (each cell's own barcode; for evaluation only).

    Raises
    ------
    FileNotFoundError
        If the files are not found and ``download=False``.
    ValueError
        If a file does not match its published SHA-256 sum or the files disagree.

    Examples
    --------
    >>> from conaae_scverse.datasets import snare_seq_cell_lines
    >>> mdata = snare_seq_cell_lines("../shared/data", download=False)  # doctest: +SKIP
    >>> mdata.mod["atac"].shape  # doctest: +SKIP
    (1047, 19)
    """
    dataset = "snare_seq_cell_lines"
    paths = fetch_dataset_files(dataset, data_dir, download=download)
    rna_x = np.load(paths["SNAREseq_rna_feat.npy"], allow_pickle=False).astype(np.float32)
    atac_x = np.load(paths["SNAREseq_atac_feat.npy"], allow_pickle=False).astype(np.float32)
    rna_codes = np.array(_read_text_lines(paths["SNAREseq_rna_types.txt"]), dtype=int)
    atac_codes = np.array(_read_text_lines(paths["SNAREseq_atac_types.txt"]), dtype=int)
    meta = pd.read_csv(paths["SNAREseq_metadata.txt"], sep="\t")

    n_cells = rna_x.shape[0]
    lengths = {
        "SNAREseq_atac_feat.npy": atac_x.shape[0],
        "SNAREseq_rna_types.txt": rna_codes.size,
        "SNAREseq_atac_types.txt": atac_codes.size,
        "SNAREseq_metadata.txt": len(meta),
    }
    if any(length != n_cells for length in lengths.values()) or not np.array_equal(
        rna_codes, atac_codes
    ):
        msg = (
            f"The SNARE-seq files disagree: SNAREseq_rna_feat.npy has {n_cells} cells, "
            f"the others {lengths}, or the two type files differ. Fetch them again."
        )
        raise ValueError(msg)
    unknown = sorted(set(rna_codes.tolist()) - set(SNARE_CELL_LINES))
    if unknown:
        msg = f"Unknown SNARE-seq cell-type codes {unknown}; expected {SNARE_CELL_LINES}."
        raise ValueError(msg)
    meta_lines = meta["CellType"].map(lambda t: _SNARE_METADATA_ALIASES.get(t, t))
    cell_lines = [SNARE_CELL_LINES[int(code)] for code in rna_codes]
    if list(meta_lines) != cell_lines:
        msg = (
            "SNAREseq_metadata.txt and SNAREseq_rna_types.txt give different cell types; "
            "the files come from different releases. Fetch them again."
        )
        raise ValueError(msg)
    names = pd.Index(meta["Barcode"].astype(str).to_numpy(), name=None)
    if not names.is_unique:
        names = pd.Index([f"snare_{i}" for i in range(n_cells)])
        logger.warning("SNARE-seq barcodes are not unique; naming cells snare_0 .. instead.")

    labels = pd.Categorical(cell_lines, categories=list(SNARE_CELL_LINES.values()))
    logger.info("Loaded SNARE-seq cell lines: rna %s, atac %s.", rna_x.shape, atac_x.shape)
    provenance = {
        "name": dataset,
        "citation": (
            "Chen, Lake & Zhang, High-throughput sequencing of the transcriptome and "
            "chromatin accessibility in the same cell, Nat. Biotechnol. 37, 1452-1457 "
            "(2019); features preprocessed by SCOT, Demetci et al., J. Comput. Biol. "
            "(2022) (MIT licence, Copyright (c) 2020 Singh Lab at Brown University CCMB)."
        ),
        "url": REGISTRY[dataset].base_url,
    }
    return _co_assay_mudata(
        names,
        {"rna_feat": rna_x, "atac_feat": atac_x},
        CELL_LINE_KEY,
        labels,
        provenance,
    )
