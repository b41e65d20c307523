"""Each benchmark script runs in --quick mode and writes its markdown table and JSON.

The script runs are ``slow`` tests (``nox -s slow``): each starts a process and trains.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "stem", "needs_data"),
    [
        ("speed.py", "speed_quick", True),
        ("scale.py", "scale_quick", False),
        ("peers.py", "peers_quick", False),
        ("label_transfer.py", "label_transfer_quick", True),
        ("label_ceiling.py", "label_ceiling_quick", True),
        ("sweep.py", "sweep_quick", True),
        ("demo_seeds.py", "demo_seeds_quick", False),
        ("prior_cost.py", "prior_cost_quick", False),
        ("geometry_check.py", "geometry_check_quick", False),
        ("unknown_types.py", "unknown_types_quick", False),
        ("vs_scglue.py", "vs_scglue_quick", True),
    ],
)
def test_quick_mode_writes_table_and_json(tmp_path, script, stem, needs_data):
    if needs_data and not (DATA / "sci_car_a549").is_dir():
        pytest.skip("sci-CAR data not available at ../shared/data")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| --- |" in proc.stdout or "|---|" in proc.stdout  # a markdown table was printed
    md = (tmp_path / f"{stem}.md").read_text()
    assert md.startswith("# ") and "|---|" in md
    payload = json.loads((tmp_path / f"{stem}.json").read_text())
    assert "environment" in payload


def test_sweep_merge_pools_seeds_and_refuses_duplicates(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import sweep
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))

    def run(config, seed, foscttm):
        return {"config": config, "dataset": "snare", "seed": seed, "foscttm": foscttm}

    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"runs": [run("default", 0, 0.1), run("other", 0, 0.5)]}))
    second.write_text(json.dumps({"runs": [run("default", 1, 0.3)]}))
    results = sweep.main(["--merge", str(first), str(second), "--configs", "default"])
    assert [r["seed"] for r in results] == [0, 1]
    out = capsys.readouterr().out
    assert "| default | 2 | 0.200 ± 0.141 |" in out and "| other |" not in out
    with pytest.raises(SystemExit, match="same config, dataset and seed twice"):
        sweep.main(["--merge", str(first), str(first)])
