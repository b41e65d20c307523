"""Execute every tutorial notebook, so that a broken tutorial fails CI.

The notebooks read the real datasets from ``CONAAE_DATA_DIR``; the tests point it at the
project's ``../shared/data`` (or keep a value already set) and skip when the data are not
there (the tutorials would otherwise download them). Each notebook runs in about a minute on
two CPU cores (short ``max_epochs``); set ``CONAAE_SKIP_TUTORIALS=1`` to skip them. They are
``slow`` tests: ``nox -s slow`` (and the docs build) runs them, the default run does not.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
CELL_TIMEOUT = 600  # seconds per cell; the notebooks take ~1-2 minutes in all
DATASETS = ("sci_car_a549", "snare_seq_cell_lines")


def _data_dir() -> Path | None:
    """The folder with the datasets: $CONAAE_DATA_DIR, else the project's ../shared/data."""
    env = os.environ.get("CONAAE_DATA_DIR", "").strip()
    candidates = [Path(env)] if env else [ROOT.parent / "shared" / "data"]
    for path in candidates:
        if all((path / name).is_dir() for name in DATASETS):
            return path.resolve()
    return None


def test_there_are_four_tutorials():
    assert [p.name for p in NOTEBOOKS] == [
        "label_transfer_unpaired.ipynb",
        "paired_multiome_anchor.ipynb",
        "quickstart_sci_car.ipynb",
        "samples_and_query.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: strip the outputs before committing"
            assert cell.execution_count is None


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    if os.environ.get("CONAAE_SKIP_TUTORIALS") == "1":
        pytest.skip("CONAAE_SKIP_TUTORIALS=1")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    data_dir = _data_dir()
    if data_dir is None:
        pytest.skip("the real datasets are not in $CONAAE_DATA_DIR or ../shared/data")

    # The kernel inherits this environment. One torch thread: much faster on small shared
    # machines than several threads competing for the same cores.
    monkeypatch.setenv("CONAAE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # files it writes go to tmp_path
    )
    start = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name} failed:\n{err}", pytrace=False)
    seconds = time.perf_counter() - start
    print(f"{path.name}: {seconds:.0f} s")
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.get("output_type") == "error"
    ]
    assert not errors
