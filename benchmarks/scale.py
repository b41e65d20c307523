"""Scaling of the whole Con-AAE job with the number of cells, on synthetic sparse data.

For each size (cells per modality), in a fresh subprocess so that peak memory is per size:
generate CSR matrices directly (no dense intermediate; 20k genes at ~5 % non-zero, 100k peaks
at ~2 % non-zero by default), then time and measure memory of each stage:

- ``setup``: ``setup_mudata`` + ``ConAAE(...)`` (validation, registration, per-feature moments),
- ``train``: a fixed number of minibatch steps (``--steps``), or with ``--steps 0`` the default
  ``train()`` (about 500 steps on small data, 20 epochs up to ~128k cells, at most 10,000
  steps beyond); the first ``train()`` also projects every cell on the principal axes,
- ``write``: ``write_results()`` (embeddings of all cells, predicted labels, nearest matches:
  exact chunked search up to 50k x 50k cells, an inverted-file search beyond).

With ``--backed`` another process first writes the data to a temporary ``.h5mu`` block by
block (a million cells never sit in memory; ~24 GB of file at 1M cells), and the job reads it
with ``backed=True``. In memory, the whole job at 1M cells needs more than a 24 GB machine has
(the sparse input alone is ~24 GB).

Matching alone (``--match-sizes``, default 1M cells per modality): the matching step only
sees the latents. Synthetic clustered latents (50 dimensions, the ATAC
latent a noisy copy of its RNA partner's) are matched both ways with the function
``write_results`` uses, timed, and the approximate matches compared with exact ones on 2,000
sampled cells (how often the same cell is found, and by how much its distance exceeds the
exact nearest one's).

Peak RSS is the process high-water mark (``getrusage``) at the end of each stage, so it is
cumulative; ``rss_mb`` is the resident size after the stage. Also reports parameter counts of
the default hidden widths (256, 128) vs the paper's rule (hidden = input width). Timings on a
shared 2-core machine are noisy (other jobs ran concurrently): compare ratios, not absolutes.

Examples
--------
python benchmarks/scale.py                      # 10k and 100k cells
python benchmarks/scale.py --quick              # smoke test, small sizes
python benchmarks/scale.py --backed --steps 0 --sizes 100000 1000000 --match-sizes  # on disk
python benchmarks/scale.py --sizes --match-sizes 100000 1000000   # matching alone
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no OpenMP spin-waiting on a busy machine

import argparse
import json
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common


def random_csr_blocks(
    n_obs: int, n_vars: int, density: float, rng: np.random.Generator, *, chunk: int = 20_000
):
    """Random count matrix in CSR, yielded ``chunk`` rows at a time (never dense).

    Row totals vary (log-normal library size around ``density``); column indices are drawn
    uniformly and sorted within each row (a few duplicates may remain; scipy sums them when
    densifying, as for any non-canonical CSR). Values are small counts (1 + Poisson(1)).
    """
    per_row = np.clip(
        rng.lognormal(np.log(density * n_vars), 0.3, size=n_obs).astype(np.int64), 1, n_vars
    )
    for start in range(0, n_obs, chunk):
        rows = per_row[start : start + chunk]
        nnz = int(rows.sum())
        cols = rng.integers(0, n_vars, size=nnz, dtype=np.int32)
        # sort within rows: row id * n_vars + col, sorted, back to col
        key = np.repeat(np.arange(len(rows), dtype=np.int64), rows) * n_vars + cols
        key.sort()
        indices = (key % n_vars).astype(np.int32)
        data = 1.0 + rng.poisson(1.0, size=nnz).astype(np.float32)
        indptr = np.concatenate([[0], np.cumsum(rows)])
        yield sparse.csr_matrix((data, indices, indptr), shape=(len(rows), n_vars))


def random_csr(
    n_obs: int, n_vars: int, density: float, rng: np.random.Generator
) -> sparse.csr_matrix:
    """The blocks of :func:`random_csr_blocks` stacked into one matrix."""
    return sparse.vstack(list(random_csr_blocks(n_obs, n_vars, density, rng)), format="csr")


def _frames(n_cells: int, n_genes: int, n_peaks: int, rng: np.random.Generator):
    """obs and var of both modalities; 3 random labels (no structure)."""
    import pandas as pd

    labels = pd.Categorical(rng.integers(0, 3, n_cells).astype(str))
    obs = {
        mod: pd.DataFrame({"label": labels}, index=[f"{mod[0]}{i}" for i in range(n_cells)])
        for mod in ("rna", "atac")
    }
    var = {
        "rna": pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]),
        "atac": pd.DataFrame(index=[f"p{i}" for i in range(n_peaks)]),
    }
    return obs, var


def synthetic_mudata(n_cells, n_genes, n_peaks, rna_density, atac_density, seed=0):
    """MuData of random sparse RNA and ATAC counts with 3 random labels (no structure)."""
    import anndata as ad
    import mudata as md

    rng = np.random.default_rng(seed)
    obs, var = _frames(n_cells, n_genes, n_peaks, rng)
    density = {"rna": rna_density, "atac": atac_density}
    return md.MuData(
        {
            mod: ad.AnnData(
                random_csr(n_cells, len(var[mod]), density[mod], rng), obs=obs[mod], var=var[mod]
            )
            for mod in ("rna", "atac")
        }
    )


def write_synthetic_h5mu(path, n_cells, n_genes, n_peaks, rna_density, atac_density, seed=0):
    """Write the data of :func:`synthetic_mudata` (same seed, same values) to ``path``.

    Row block by row block, so that a million cells never sit in memory: the MuData is written
    with empty matrices, then each modality's ``X`` is rewritten from its first block (with a
    64-bit ``indptr``: more than 2^31 non-zeros) and the other blocks are appended.
    """
    import anndata as ad
    import h5py
    import mudata as md
    from anndata.io import sparse_dataset, write_elem

    rng = np.random.default_rng(seed)
    obs, var = _frames(n_cells, n_genes, n_peaks, rng)
    density = {"rna": rna_density, "atac": atac_density}
    empty = {
        mod: ad.AnnData(
            sparse.csr_matrix((n_cells, len(var[mod])), dtype=np.float32),
            obs=obs[mod],
            var=var[mod],
        )
        for mod in ("rna", "atac")
    }
    md.MuData(empty).write_h5mu(path)
    del empty, obs
    with h5py.File(path, "r+") as store:
        for mod in ("rna", "atac"):
            group = store["mod"][mod]
            del group["X"]
            blocks = random_csr_blocks(n_cells, len(var[mod]), density[mod], rng)
            write_elem(group, "X", next(blocks), dataset_kwargs={"indptr_dtype": np.int64})
            on_disk = sparse_dataset(group["X"])
            for block in blocks:
                on_disk.append(block)
            if on_disk.shape != (n_cells, len(var[mod])):  # pragma: no cover
                msg = f"wrote {on_disk.shape} for {mod}"
                raise RuntimeError(msg)


def _rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # pragma: no cover
        return float("nan")


def param_count(n_in: int, hidden: list[int], n_latent: int = 50) -> int:
    """Parameters of one encoder + mirrored decoder (Linear layers, weights + biases)."""
    widths = [n_in, *hidden, n_latent]
    enc = sum(a * b + b for a, b in pairwise(widths))
    dec = sum(a * b + b for a, b in pairwise(widths[::-1]))
    return enc + dec


def run_size(args) -> dict:
    """One size, in this process; returns stage timings and memory."""
    import torch

    torch.set_num_threads(args.threads)
    common.quiet()
    from conaae_scverse import ConAAE

    out = {"n_cells": args.one, "stages": {}}

    def stage(name, t0, c0):
        out["stages"][name] = {
            "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0,
            "rss_mb": _rss_mb(),
            "peak_rss_mb": common.peak_rss_mb(),
        }

    t0, c0 = time.perf_counter(), time.process_time()
    if args.backed:
        # Generated and written by another process, so that this one's peak memory is the
        # job's own: it reads the .h5mu backed (matrices stay on disk).
        import tempfile

        import mudata as md

        folder = tempfile.mkdtemp(prefix="conaae_scale_")
        path = str(Path(folder) / "data.h5mu")
        command = [sys.executable, __file__, "--write-h5mu", path, "--one", str(args.one)]
        command += ["--genes", str(args.genes), "--peaks", str(args.peaks)]
        command += ["--rna-density", str(args.rna_density)]
        command += ["--atac-density", str(args.atac_density), "--first-seed", str(args.seed)]
        subprocess.run(command, check=True)
        mdata = md.read_h5mu(path, backed=True)
        out["nnz_rna"] = int(mdata["rna"].X.group["data"].shape[0])
        out["nnz_atac"] = int(mdata["atac"].X.group["data"].shape[0])
        out["h5mu_gb"] = Path(path).stat().st_size / 1e9
    else:
        mdata = synthetic_mudata(
            args.one, args.genes, args.peaks, args.rna_density, args.atac_density, seed=args.seed
        )
        out["nnz_rna"] = int(mdata["rna"].X.nnz)
        out["nnz_atac"] = int(mdata["atac"].X.nnz)
    stage("generate", t0, c0)

    t0, c0 = time.perf_counter(), time.process_time()
    ConAAE.setup_mudata(mdata, labels_key="label")
    model = ConAAE(mdata, seed=args.seed)
    out["n_parameters"] = int(sum(p.numel() for p in model.module.parameters()))
    stage("setup", t0, c0)

    t0, c0 = time.perf_counter(), time.process_time()
    quiet = {"enable_progress_bar": False, "enable_model_summary": False}
    if args.steps == 0:  # the default train(): its own length and validation split
        model.train(batch_size=args.batch_size, accelerator=args.accelerator, **quiet)
    else:
        model.train(
            max_epochs=1,
            batch_size=args.batch_size,
            accelerator=args.accelerator,
            train_size=1.0,
            limit_train_batches=args.steps,
            **quiet,
        )
    stage("train", t0, c0)
    out["epochs"] = int(model.trainer.max_epochs)
    out["steps"] = int(model.trainer.num_training_batches) * out["epochs"]
    out["cells_per_s"] = 2 * out["steps"] * args.batch_size / out["stages"]["train"]["wall_s"]

    t0, c0 = time.perf_counter(), time.process_time()
    model.write_results()
    stage("write", t0, c0)
    if args.backed:
        mdata.file.close()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    out["match_method"] = _match_method(args.one)
    out["total_wall_s"] = sum(s["wall_s"] for s in out["stages"].values())
    return out


def _match_method(n_cells: int) -> str:
    """Which search `write_results` uses for n_cells x n_cells cells."""
    from conaae_scverse._neighbors import EXACT_LIMIT

    return "exact" if n_cells * n_cells <= EXACT_LIMIT else "approximate (inverted file)"


def synthetic_latents(n_cells: int, n_latent: int = 50, *, seed: int = 0):
    """Clustered latents of two modalities; row i of one is the noisy partner of row i."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(30, n_latent)).astype(np.float32)
    z_rna = centres[rng.integers(0, len(centres), n_cells)]
    z_rna += rng.normal(0.0, 1.0, size=z_rna.shape).astype(np.float32)
    z_atac = z_rna + rng.normal(0.0, 0.5, size=z_rna.shape).astype(np.float32)
    return z_rna, z_atac


def run_matching(args) -> dict:
    """Match ``args.one_match`` cells each way as ``write_results`` does; time and check it."""
    import torch

    from conaae_scverse._neighbors import nearest_neighbors

    torch.set_num_threads(args.threads)
    n = args.one_match
    z_rna, z_atac = synthetic_latents(n, seed=args.seed)
    out = {"n_cells": n, "directions": {}}
    sample = np.random.default_rng(args.seed).choice(n, size=min(2000, n), replace=False)
    for name, query, reference in (("rna->atac", z_rna, z_atac), ("atac->rna", z_atac, z_rna)):
        t0, c0 = time.perf_counter(), time.process_time()
        idx, distance = nearest_neighbors(query, reference, k=1, metric="l1")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak = common.peak_rss_mb()  # before the exact check below, which is not part of the job
        exact, exact_dist = nearest_neighbors(
            query[sample], reference, k=1, metric="l1", method="exact"
        )
        out["directions"][name] = {
            "wall_s": wall,
            "cpu_s": cpu,
            "peak_rss_mb": peak,
            "agrees_with_exact": float(np.mean(idx[sample, 0] == exact[:, 0])),
            "distance_excess": float(np.mean(distance[sample, 0] / exact_dist[:, 0]) - 1),
            "true_partner": float(np.mean(idx[:, 0] == np.arange(n))),
        }
    out["method"] = _match_method(n)
    out["latents_mb"] = 2 * z_rna.nbytes / 2**20
    return out


def _run_in_subprocess(flag: str, n: int, argv: list[str]) -> dict:
    """Run one size in a fresh process (so its peak memory is its own); parse its RESULT."""
    cmd = [sys.executable, __file__, flag, str(n), *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        tail = (proc.stderr or "")[-600:].replace("\n", " ")
        return {"n_cells": n, "error": f"rc={proc.returncode}: {tail}"}
    return json.loads(line[0][7:])


def matching_table(results: list[dict]) -> str:
    """Markdown table of the matching-only runs."""
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["n_cells"], "FAILED", r["error"][:120], "", "", "", "", "", ""])
            continue
        for name, d in r["directions"].items():
            rows.append(
                [
                    r["n_cells"],
                    name,
                    r["method"],
                    f"{d['wall_s']:.1f}",
                    f"{d['cpu_s']:.1f}",
                    f"{d['peak_rss_mb']:.0f}",
                    f"{100 * d['agrees_with_exact']:.1f}",
                    f"{100 * d['distance_excess']:.2f}",
                    f"{100 * d['true_partner']:.1f}",
                ]
            )
    header = [
        "cells/modality",
        "direction",
        "method",
        "wall s",
        "CPU s",
        "peak RSS MB",
        "same match as exact (%, 2,000 cells)",
        "distance above exact (%)",
        "match is the true partner (%)",
    ]
    return common.markdown_table(header, rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[10_000, 100_000],
        help="cells per modality; in memory 1000000 needs ~30 GB (use --backed on a 24 GB box)",
    )
    parser.add_argument(
        "--match-sizes",
        type=int,
        nargs="*",
        default=[1_000_000],
        help="cells per modality of the matching-only runs (on synthetic latents)",
    )
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--peaks", type=int, default=100_000)
    parser.add_argument("--rna-density", type=float, default=0.05)
    parser.add_argument("--atac-density", type=float, default=0.02)
    parser.add_argument(
        "--steps",
        type=int,
        default=20,
        help="training minibatch steps; 0: the default train() (its own length, at most "
        "10,000 steps, with a 10%% validation split)",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--accelerator", default="cpu", help="'cpu' (default), 'gpu' or 'auto' for training"
    )
    common.add_standard_arguments(
        parser, seeds=1, threads=1, quick="smoke test: tiny sizes", first_seed=True
    )
    parser.add_argument(
        "--backed",
        action="store_true",
        help="write each size's data to a temporary .h5mu and run the job on it backed "
        "(matrices on disk)",
    )
    parser.add_argument("--write-h5mu", help=argparse.SUPPRESS)  # internal: data to a file
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one size
    parser.add_argument("--one-match", type=int, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args(argv)
    args.seed = common.single_seed(parser, args)
    if args.quick:
        args.sizes, args.genes, args.peaks, args.steps = [1000, 3000], 2000, 5000, 3
        args.match_sizes = [2000]
    if args.write_h5mu is not None:
        write_synthetic_h5mu(
            args.write_h5mu,
            args.one,
            args.genes,
            args.peaks,
            args.rna_density,
            args.atac_density,
            seed=args.seed,
        )
        return 0
    if args.one is not None:
        print("RESULT " + json.dumps(run_size(args)))
        return 0
    if args.one_match is not None:
        print("RESULT " + json.dumps(run_matching(args)))
        return 0

    load = common.load_average()
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--quick"]
    forwarded += ["--genes", str(args.genes), "--peaks", str(args.peaks)]
    forwarded += ["--steps", str(args.steps), "--sizes", "--match-sizes"]
    results = []
    for n in args.sizes:
        est_gb = n * (args.genes * args.rna_density + args.peaks * args.atac_density) * 8 / 1e9
        print(f"size {n}: ~{est_gb:.1f} GB of CSR data; running ...", flush=True)
        results.append(_run_in_subprocess("--one", n, forwarded))
    matching = []
    for n in args.match_sizes:
        print(f"matching {n} x {n} cells (latents only); running ...", flush=True)
        matching.append(_run_in_subprocess("--one-match", n, forwarded))

    header = [
        "cells/modality",
        "nnz RNA",
        "nnz ATAC",
        "stage",
        "wall s",
        "CPU s",
        "RSS MB",
        "peak RSS MB",
    ]
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["n_cells"], "", "", "FAILED", r["error"][:120], "", "", ""])
            continue
        for name, s in r["stages"].items():
            rows.append(
                [
                    r["n_cells"],
                    f"{r['nnz_rna']:.3g}",
                    f"{r['nnz_atac']:.3g}",
                    name,
                    f"{s['wall_s']:.1f}",
                    f"{s['cpu_s']:.1f}",
                    f"{s['rss_mb']:.0f}",
                    f"{s['peak_rss_mb']:.0f}",
                ]
            )
    table = common.markdown_table(header, rows)

    growth = []
    ok = [r for r in results if "error" not in r]
    for a, b in pairwise(ok):
        f = b["n_cells"] / a["n_cells"]
        growth.append(
            f"{a['n_cells']} -> {b['n_cells']} cells (x{f:g}): "
            + ", ".join(
                f"{st} x{b['stages'][st]['wall_s'] / max(a['stages'][st]['wall_s'], 1e-9):.1f}"
                for st in ("generate", "setup", "train", "write")
            )
            + "; peak RSS x"
            + f"{b['stages']['write']['peak_rss_mb'] / a['stages']['write']['peak_rss_mb']:.1f}"
        )
    thr = [
        f"{r['n_cells']}: {r['cells_per_s']:.0f} cells/s ({r['steps']} steps in "
        f"{r['epochs']} epoch(s) of {args.batch_size} + {args.batch_size} cells)"
        for r in ok
    ]

    hidden_default = [256, 128]
    params = []
    for name, n_in in (("RNA", args.genes), ("ATAC", args.peaks)):
        d = param_count(n_in, hidden_default)
        p = param_count(n_in, [n_in] * 3 + [100])
        params.append(
            [name, n_in, f"{d:,}", f"{d * 4 / 2**20:.0f} MB", f"{p:,}", f"{p * 4 / 2**30:.1f} GB"]
        )
    ptable = common.markdown_table(
        [
            "modality",
            "input width",
            "params default (256,128)",
            "fp32",
            "params paper (hidden = input)",
            "fp32",
        ],
        params,
    )
    model_params = {r["n_cells"]: r["n_parameters"] for r in ok}

    note = (
        f"Synthetic CSR data: {args.genes} genes at ~{args.rna_density:.0%} non-zero, "
        f"{args.peaks} peaks at ~{args.atac_density:.0%} non-zero; "
        + (
            "the default `train()`"
            if args.steps == 0
            else f"{args.steps} training steps of batch {args.batch_size}"
        )
        + f"; {args.threads} torch thread(s); each size in its own "
        f"process; training on accelerator={args.accelerator!r}, matching on the CPU. Load "
        f"average (1, 5, 15 min) at the start: {load}; with other jobs running, wall times "
        "are pessimistic and CPU seconds the steadier figure. Peak RSS is cumulative "
        "(process high-water mark)."
        + (
            " Backed: another process generated the data and wrote it to a temporary .h5mu "
            "(the `generate` stage), which the job then read with `backed=True`."
            if args.backed
            else ""
        )
    )
    md = "\n\n".join(
        [
            "# Scaling (benchmarks/scale.py" + (" --backed)" if args.backed else ")"),
            note,
            table,
            "Cost growth: " + ("; ".join(growth) or "n/a"),
            "Training throughput: " + "; ".join(thr),
            "Model size, per modality (encoder + decoder), with every feature into the networks "
            "(`n_input_components=0`; by default both modalities here are projected on 100 "
            "principal axes):",
            ptable,
            "Whole model (both autoencoders, discriminator, classifier) as trained here, "
            f"default settings: "
            f"{model_params}",
            "## Matching alone, synthetic latents (50 dimensions, l1, both directions)",
            matching_table(matching) if matching else "not run",
        ]
    )
    print(md)
    payload = {"results": results, "matching": matching, "note": note}
    common.write_report(args, "scale_backed" if args.backed else "scale", md, payload)
    return 0 if all("error" not in r for r in [*results, *matching]) else 1


if __name__ == "__main__":
    sys.exit(main())
