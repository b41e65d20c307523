"""Locate, download and verify the files of the bundled real datasets.

The files are looked up, in this order, in

1. the ``data_dir`` argument of a loader,
2. the directory named by the environment variable ``CONAAE_DATA_DIR``,

each of which must contain one subfolder per dataset (``sci_car_a549/``,
``snare_seq_cell_lines/``). If the files are not there and ``download=True``, they are
fetched with :mod:`pooch` from their public locations into
``pooch.os_cache("conaae-scverse")``. Every file that is read is checked against its
known SHA-256 sum first.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import pooch

from .._constants import DATA_DIR_ENV

logger = logging.getLogger(__name__)

#: Name of the :func:`pooch.os_cache` folder that downloads go to.
CACHE_NAME = "conaae-scverse"

_SCI_CAR_URL = (
    "https://raw.githubusercontent.com/uhlerlab/cross-modal-autoencoders/"
    "6480e5658183ce67aee962549b31e7eee0108bf6/model_rna_atac/processed_data/"
    "transcription_factor/"
)
_SNARE_URL = (
    "https://raw.githubusercontent.com/rsinghlab/SCOT/"
    "14649be6e14017dcfe7ba619091b33d1df55f6a9/data/SNARE/"
)


@dataclass(frozen=True)
class _DatasetFiles:
    """Where a dataset's files live and what they hash to.

    Parameters
    ----------
    base_url
        Public URL of the folder holding the files; a file's URL is ``base_url + name``.
    local
        File name to SHA-256 sum, for the files read from a local data directory.
    remote
        File name to SHA-256 sum (``None`` where no sum is known, in which case the
        reader must verify the content itself), for the files downloaded.
    """

    base_url: str
    local: dict[str, str]
    remote: dict[str, str | None]


_SCI_CAR_SHARED = {
    "GSM3271040_RNA_sciCAR_A549_cell.txt": (
        "67aeb3bd57e195786b8889b93aded7c3b8a476ab3c5a6469be2abf3d851feef9"
    ),
    "diff_atac_shared_cells.npz": (
        "8ad7347e3a5e5540b14fbca5a27b66ec9ef5e1978fd6497a6ea45444882aa138"
    ),
    "diff_expr_shared_cells.npz": (
        "1faee599007227dbf830b66513e0b9f773cce2b6a3e271058aaed2d62ee7072f"
    ),
}
#: SHA-256 of ``shared_cells.txt``: the barcodes, one a line, each line ending in ``\n``.
#: The published ``shared_cells.pkl`` has no known sum; its decoded barcode list is checked
#: against this one instead (see :func:`barcodes_sha256`).
SCI_CAR_BARCODES_SHA256 = "29c553540c9e2636e1822d2259554e1183a9eef069596625190db28992bcc5c5"

_SNARE_FILES = {
    "SNAREseq_atac_feat.npy": "80d685b6517c100a7fd612846ad38209b64ed9caf095d1630af5a1d7797bd79c",
    "SNAREseq_atac_types.txt": "3697fe94aee8b0ed2fad49c10c3226b757cedd8046a5cc0b10d0a845ad540a1d",
    "SNAREseq_metadata.txt": "4bfd15c9205ff47e4d37bb0f9d7a9efbe9131b6f660a80f8ad22fccb61c87562",
    "SNAREseq_rna_feat.npy": "a8a2c2bbfc036dea5b350d01dd2180b93bb3b1c0008bed49493080348da96a9b",
    "SNAREseq_rna_types.txt": "3697fe94aee8b0ed2fad49c10c3226b757cedd8046a5cc0b10d0a845ad540a1d",
}

REGISTRY: dict[str, _DatasetFiles] = {
    "sci_car_a549": _DatasetFiles(
        base_url=_SCI_CAR_URL,
        local={**_SCI_CAR_SHARED, "shared_cells.txt": SCI_CAR_BARCODES_SHA256},
        remote={**_SCI_CAR_SHARED, "shared_cells.pkl": None},
    ),
    "snare_seq_cell_lines": _DatasetFiles(
        base_url=_SNARE_URL,
        local=dict(_SNARE_FILES),
        remote=dict(_SNARE_FILES),
    ),
}


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the directory that holds the dataset subfolders, if one is configured.

    Parameters
    ----------
    data_dir
        Directory given by the caller. Takes precedence over the environment.

    Returns
    -------
    ``Path(data_dir)`` if given, else the path in the environment variable
    ``CONAAE_DATA_DIR`` if it is set and not empty, else ``None``.

    Examples
    --------
    >>> resolve_data_dir("/data/conaae")
    PosixPath('/data/conaae')
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return None


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 hex digest of a file, read in chunks.

    Parameters
    ----------
    path
        File to hash.

    Returns
    -------
    The 64-character lower-case hex digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike[str], expected: str) -> None:
    """Check that a file has the expected SHA-256 sum.

    Parameters
    ----------
    path
        File to check.
    expected
        Expected hex digest (case-insensitive).

    Raises
    ------
    ValueError
        If the digests differ; the message names the file and both digests.
    """
    actual = file_sha256(path)
    if actual != expected.lower():
        msg = (
            f"SHA-256 mismatch for {str(path)!r}: expected {expected}, got {actual}. "
            "The file is corrupt or not the published version; delete it and fetch it "
            "again (e.g. with `download=True` and no `data_dir`)."
        )
        raise ValueError(msg)


def barcodes_sha256(barcodes: list[str]) -> str:
    r"""Return the SHA-256 of a barcode list written as text, one barcode a line.

    Parameters
    ----------
    barcodes
        Barcodes in order.

    Returns
    -------
    Hex digest of ``"".join(b + "\n" for b in barcodes)`` encoded as UTF-8, which is
    the sum of the file ``shared_cells.txt``.
    """
    return hashlib.sha256("".join(f"{b}\n" for b in barcodes).encode("utf-8")).hexdigest()


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Unpickler that refuses to look up any module attribute.

    Without :meth:`find_class` a pickle can only build built-in containers and scalars
    (lists, dicts, tuples, str, bytes, numbers, bool, None): no object can be
    instantiated and no function called, so nothing in the stream is executed.
    """

    def find_class(self, module: str, name: str) -> object:
        msg = (
            f"Refusing to load {module}.{name} from a pickle: only plain lists of strings "
            "are accepted. The file is not the published barcode list; delete it and "
            "download it again."
        )
        raise pickle.UnpicklingError(msg)


def load_str_list_pickle(path: str | os.PathLike[str]) -> list[str]:
    """Read a pickled list of strings without executing anything in the pickle.

    The pickle is decoded by a :class:`pickle.Unpickler` whose ``find_class`` refuses
    every name, so a stream that references any function or class (for example
    ``os.system``) fails with :class:`pickle.UnpicklingError` before anything runs.

    Parameters
    ----------
    path
        Pickle file holding a ``list`` of ``str`` (protocol 0 to 5; Python 2 byte strings
        are decoded as UTF-8).

    Returns
    -------
    The list of strings.

    Raises
    ------
    pickle.UnpicklingError
        If the pickle references any global name.
    ValueError
        If the pickle holds anything other than a list of strings.

    Examples
    --------
    >>> barcodes = load_str_list_pickle("shared_cells.pkl")  # doctest: +SKIP
    """
    data = Path(path).read_bytes()
    obj = _NoGlobalsUnpickler(io.BytesIO(data), encoding="utf-8").load()
    if not isinstance(obj, list) or not all(isinstance(item, str) for item in obj):
        msg = (
            f"Expected {str(path)!r} to hold a pickled list of str, got "
            f"{type(obj).__name__}. Delete the file and download it again."
        )
        raise ValueError(msg)
    return obj


def _missing_files(folder: Path, names: list[str]) -> list[str]:
    return [name for name in names if not (folder / name).is_file()]


def _local_folder(root: Path, dataset: str, names: list[str]) -> tuple[Path, list[str]]:
    """Pick ``root/dataset`` (or ``root`` itself if it holds the files) and list what's missing."""
    folder = root / dataset
    missing = _missing_files(folder, names)
    if missing and not _missing_files(root, names):
        return root, []
    return folder, missing


def _download(dataset: str) -> dict[str, Path]:
    spec = REGISTRY[dataset]
    cache = Path(pooch.os_cache(CACHE_NAME)) / dataset
    paths: dict[str, Path] = {}
    for name, sha in spec.remote.items():
        known_hash = None if sha is None else f"sha256:{sha}"
        path = pooch.retrieve(
            url=spec.base_url + name,
            known_hash=known_hash,
            fname=name,
            path=cache,
            progressbar=False,
        )
        paths[name] = Path(path)
    return paths


def fetch_dataset_files(
    dataset: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
) -> dict[str, Path]:
    """Return verified paths to the files of a bundled dataset.

    Parameters
    ----------
    dataset
        Key in :data:`REGISTRY`, also the name of the dataset's subfolder.
    data_dir
        Directory holding the dataset subfolder; defaults to ``$CONAAE_DATA_DIR``.
        A directory that holds the dataset's files directly is accepted too.
    download
        Whether to download missing files into ``pooch.os_cache("conaae-scverse")``.

    Returns
    -------
    File name to path. The names are those of ``REGISTRY[dataset].local`` when the files
    were found locally and of ``REGISTRY[dataset].remote`` when they were downloaded.
    Every file with a known SHA-256 sum has been verified.

    Raises
    ------
    FileNotFoundError
        If the files are not found locally and ``download=False``.
    ValueError
        If a file's SHA-256 sum differs from the published one.
    """
    if dataset not in REGISTRY:
        msg = f"Unknown dataset {dataset!r}; choose one of {sorted(REGISTRY)}."
        raise ValueError(msg)
    spec = REGISTRY[dataset]
    names = list(spec.local)
    root = resolve_data_dir(data_dir)

    if root is not None:
        folder, missing = _local_folder(root, dataset, names)
        if not missing:
            logger.info("Reading dataset %r from %s", dataset, folder)
            paths = {name: folder / name for name in names}
            for name, path in paths.items():
                verify_sha256(path, spec.local[name])
            return paths
        where = f"{str(folder)!r} is missing {missing}"
    else:
        where = f"no data directory was given and ${DATA_DIR_ENV} is not set"

    if not download:
        msg = (
            f"Files of dataset {dataset!r} not found: {where}. Pass `data_dir=` pointing at "
            f"a directory that contains a {dataset!r} subfolder with {names}, set the "
            f"{DATA_DIR_ENV} environment variable to such a directory, or pass "
            "`download=True` to fetch the files."
        )
        raise FileNotFoundError(msg)

    logger.info("Dataset %r not found locally (%s); downloading it.", dataset, where)
    paths = _download(dataset)
    for name, path in paths.items():
        sha = spec.remote[name]
        if sha is not None:
            verify_sha256(path, sha)
    return paths
