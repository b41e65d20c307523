from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest

from conaae_scverse._constants import DATA_DIR_ENV
from conaae_scverse.datasets import _fetch
from conaae_scverse.datasets._fetch import (
    barcodes_sha256,
    fetch_dataset_files,
    file_sha256,
    load_str_list_pickle,
    resolve_data_dir,
    verify_sha256,
)


class _RunsShell:
    """Pickles into a call of os.system, i.e. arbitrary code on load."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_resolve_prefers_argument_over_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "from_env"))
    assert resolve_data_dir(tmp_path / "given") == tmp_path / "given"
    assert resolve_data_dir(str(tmp_path / "given")) == tmp_path / "given"


def test_resolve_reads_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert resolve_data_dir() == tmp_path


@pytest.mark.parametrize("value", [None, "", "   "])
def test_resolve_without_configuration(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    else:
        monkeypatch.setenv(DATA_DIR_ENV, value)
    assert resolve_data_dir() is None


def test_file_sha256_and_verify(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"conaae")
    expected = hashlib.sha256(b"conaae").hexdigest()
    assert file_sha256(path) == expected
    verify_sha256(path, expected)
    verify_sha256(path, expected.upper())
    wrong = "0" * 64
    with pytest.raises(
        ValueError, match=rf"SHA-256 mismatch for .*file\.bin.*{wrong}.*{expected}"
    ):
        verify_sha256(path, wrong)


def test_barcodes_sha256_matches_text_file(tmp_path):
    path = tmp_path / "cells.txt"
    path.write_text("a\nb\n")
    assert barcodes_sha256(["a", "b"]) == file_sha256(path)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_restricted_unpickler_loads_list_of_str(tmp_path, protocol):
    path = tmp_path / "cells.pkl"
    barcodes = ["sci-RNA-A-001.AAGT", "sci-RNA-B-044.GATT", "é"]
    path.write_bytes(pickle.dumps(barcodes, protocol=protocol))
    assert load_str_list_pickle(path) == barcodes


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_restricted_unpickler_refuses_code_without_running_it(tmp_path, protocol):
    sentinel = tmp_path / "executed"
    payload = pickle.dumps([_RunsShell(f"touch {sentinel}")], protocol=protocol)
    assert b"system" in payload
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(pickle.UnpicklingError, match=r"Refusing to load (posix|nt|os)\.system"):
        load_str_list_pickle(path)
    assert not sentinel.exists()


def test_restricted_unpickler_refuses_any_class(tmp_path):
    path = tmp_path / "path.pkl"
    path.write_bytes(pickle.dumps([Path("x")]))
    with pytest.raises(pickle.UnpicklingError, match="Refusing to load pathlib"):
        load_str_list_pickle(path)


@pytest.mark.parametrize("obj", [{"a": "b"}, ["a", 1], "abc"])
def test_restricted_unpickler_wants_list_of_str(tmp_path, obj):
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(ValueError, match="to hold a pickled list of str"):
        load_str_list_pickle(path)


def test_missing_files_without_download(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(
        FileNotFoundError, match=r"sci_car_a549.*missing.*data_dir.*CONAAE_DATA_DIR"
    ):
        fetch_dataset_files("sci_car_a549", tmp_path, download=False)


def test_no_directory_configured_without_download(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=r"no data directory was given and \$CONAAE"):
        fetch_dataset_files("snare_seq_cell_lines", download=False)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="Unknown dataset 'nope'"):
        fetch_dataset_files("nope", download=False)


def test_local_files_are_hash_checked(monkeypatch, tmp_path):
    monkeypatch.setitem(
        _fetch.REGISTRY,
        "toy",
        _fetch._DatasetFiles(
            base_url="https://example.invalid/",
            local={"a.txt": hashlib.sha256(b"good").hexdigest()},
            remote={},
        ),
    )
    (tmp_path / "toy").mkdir()
    path = tmp_path / "toy" / "a.txt"
    path.write_bytes(b"good")
    assert fetch_dataset_files("toy", tmp_path, download=False) == {"a.txt": path}
    path.write_bytes(b"evil")
    with pytest.raises(ValueError, match=r"SHA-256 mismatch for .*a\.txt"):
        fetch_dataset_files("toy", tmp_path, download=False)


def test_missing_local_files_are_downloaded_into_the_cache(monkeypatch, tmp_path):
    content = b"remote"
    monkeypatch.setitem(
        _fetch.REGISTRY,
        "toy",
        _fetch._DatasetFiles(
            base_url="https://example.invalid/toy/",
            local={"a.txt": hashlib.sha256(content).hexdigest()},
            remote={"a.txt": hashlib.sha256(content).hexdigest(), "b.pkl": None},
        ),
    )
    calls = []

    def fake_retrieve(url, known_hash, fname, path, progressbar):
        calls.append((url, known_hash))
        Path(path).mkdir(parents=True, exist_ok=True)
        target = Path(path) / fname
        target.write_bytes(content)
        return str(target)

    monkeypatch.setattr(_fetch.pooch, "os_cache", lambda name: tmp_path / "cache" / name)
    monkeypatch.setattr(_fetch.pooch, "retrieve", fake_retrieve)
    paths = fetch_dataset_files("toy", tmp_path / "empty", download=True)
    assert paths["a.txt"] == tmp_path / "cache" / "conaae-scverse" / "toy" / "a.txt"
    assert calls == [
        ("https://example.invalid/toy/a.txt", f"sha256:{hashlib.sha256(content).hexdigest()}"),
        ("https://example.invalid/toy/b.pkl", None),
    ]
