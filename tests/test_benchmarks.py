"""Smoke test of benchmarks/reproduce.py: it runs in quick mode and writes its table and JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "reproduce.py"
DATA_DIR = ROOT / ".." / "shared" / "data"


def _load_reproduce():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("reproduce", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["reproduce"] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


@pytest.mark.slow
@pytest.mark.skipif(
    not (DATA_DIR / "sci_car_a549").is_dir() or not (DATA_DIR / "snare_seq_cell_lines").is_dir(),
    reason="real datasets not found in ../shared/data",
)
def test_reproduce_quick_writes_tables(tmp_path):
    reproduce = _load_reproduce()
    out = reproduce.main(["--quick", "--out", str(tmp_path), "--data-dir", str(DATA_DIR)])

    md_text = (tmp_path / "reproduce.md").read_text()
    payload = json.loads((tmp_path / "reproduce.json").read_text())
    rows = list(reproduce.ROWS)
    assert rows[0] == "Basic" and rows[-1] == "Con-AAE"
    for dataset, modes in (("sci_car", ["heldout"]), ("snare", ["heldout", "transductive"])):
        for mode in modes:
            assert f"## {dataset} — {mode}" in md_text
            assert list(payload["results"][dataset][mode]) == rows
            for row in rows:
                summary = payload["results"][dataset][mode][row]["summary"]
                for key in ("foscttm", "recall@10_l1", "recall@50_l1", "integration_acc"):
                    assert 0.0 <= summary[key]["mean"] <= 1.0
    for row in rows:
        assert f"| {row} " in md_text
    # the published sci-CAR numbers sit beside ours
    assert "| 63.9 |" in md_text and "| 28.4 |" in md_text
    assert list(payload["results"]["simulated"]) == ["300|None"]
    assert payload["meta"]["total_wall_s"] > 0
    assert out["meta"]["seeds"] == 1
    # evaluation cells are the held-out 20 %; transductive uses all of them
    sci = payload["results"]["sci_car"]["heldout"]["Con-AAE"]["summary"]
    assert sci["n_eval"]["mean"] == 60
    snare = payload["results"]["snare"]["transductive"]["Con-AAE"]["summary"]
    assert snare["n_eval"]["mean"] == 300
