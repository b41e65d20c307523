"""Both BMMC donors in one model, with and without the donor as ``batch_key``.

The BMMC multiome starter (``../shared/data``) holds cells of two donors: s1d1 (the
challenge's training cells) and s1d2 (its test cells). A model trained on one donor and
applied to the other aligns at chance; here both donors are trained on together, unpaired
(each modality in an order of its own), RNA labelled, ATAC unlabelled, with the peak-gene
links of the hg38 annotation:

- ``no_batch_key``: the donors are not told apart;
- ``batch_key``: ``setup_mudata(batch_key="batch")``, the donor column of both modalities.

Reported per seed: FOSCTTM on the true pairs of donor s1d2 (Euclidean; chance 0.5) and on all
pairs, the accuracy of the predicted ATAC labels (s1d2 and all), the same-donor share of each
cell's 15 nearest cells of its modality, and training time. The ATAC-only label ceiling on
this split is 0.322 (``label_ceiling.py``: a classifier trained on s1d1's ATAC profiles
predicts s1d2's labels).

Examples
--------
python benchmarks/bmmc_donors.py                 # both configs, seeds 0-2
python benchmarks/bmmc_donors.py --quick         # smoke test
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
from samples import same_sample_share

CONFIGS = ("no_batch_key", "batch_key")
LABEL_KEY = "cell_type"
DONOR_KEY = "batch"
SCORED_DONOR = "s1d2"
ATAC_CEILING = 0.322  # label_ceiling.py, BMMC held-out donor


def run_one(task: tuple[str, int, argparse.Namespace]) -> dict:
    """One seed of one configuration."""
    from conaae_scverse import ConAAE

    config, seed, args = task
    common.quiet()
    mdata = common.load_bmmc(args.data_dir, random_state=seed)
    atac = mdata.mod["atac"].obs
    truth = atac[LABEL_KEY].astype(str).to_numpy()
    atac[LABEL_KEY] = atac[LABEL_KEY].where(np.zeros(len(atac), dtype=bool))
    ConAAE.setup_mudata(
        mdata,
        labels_key=LABEL_KEY,
        gene_links=common.gene_links(mdata, args.data_dir),
        batch_key=DONOR_KEY if config == "batch_key" else None,
    )
    model = ConAAE(mdata, seed=seed)
    start = time.perf_counter()
    model.train(2 if args.quick else None, accelerator="cpu", enable_progress_bar=False)
    seconds = time.perf_counter() - start
    z = {mod: model.get_latent_representation(modality=mod) for mod in ("rna", "atac")}
    predicted = np.asarray(model.predict(modality="atac"), dtype=str)
    donors = {mod: mdata.mod[mod].obs[DONOR_KEY].astype(str).to_numpy() for mod in z}
    scored = {mod: donors[mod] == SCORED_DONOR for mod in z}
    held_out = common.subset_cells(
        mdata, np.flatnonzero(scored["rna"]), np.flatnonzero(scored["atac"])
    )
    return {
        "config": config,
        "seed": seed,
        "foscttm_s1d2": common.score_alignment(
            held_out, z["rna"][scored["rna"]], z["atac"][scored["atac"]], metric="l2"
        )["foscttm"],
        "foscttm_all": common.score_alignment(mdata, z["rna"], z["atac"], metric="l2")["foscttm"],
        "atac_acc_s1d2": float(np.mean((predicted == truth)[scored["atac"]])),
        "atac_acc_all": float(np.mean(predicted == truth)),
        "same_donor": {mod: same_sample_share(z[mod], donors[mod]) for mod in z},
        "train_s": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_standard_arguments(
        parser, seeds=3, threads=1, quick="smoke test: 2 epochs", data_dir=True, first_seed=True
    )
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = 1
    tasks = [(c, s, args) for c in args.configs for s in common.seed_range(args)]
    runs = common.run_tasks(
        run_one,
        tasks,
        jobs=args.jobs,
        threads=args.threads,
        on_result=common.print_run,
    )
    rows = [
        [
            r["config"],
            str(r["seed"]),
            f"{r['foscttm_s1d2']:.3f}",
            f"{r['foscttm_all']:.3f}",
            f"{r['atac_acc_s1d2']:.3f}",
            f"{r['atac_acc_all']:.3f}",
            f"{ATAC_CEILING:.3f}",
            f"{r['same_donor']['rna']:.2f}",
            f"{r['same_donor']['atac']:.2f}",
            f"{r['train_s']:.0f}",
        ]
        for r in runs
    ]
    header = [
        "config",
        "seed",
        "FOSCTTM s1d2 pairs",
        "FOSCTTM all pairs",
        "ATAC label acc s1d2",
        "ATAC label acc all",
        "ATAC-only ceiling (s1d2)",
        "same-donor neighbours RNA",
        "same-donor neighbours ATAC",
        "train s",
    ]
    note = (
        "BMMC multiome starter, both donors (221 cells of s1d1, 279 of s1d2), unpaired (each "
        "modality in an order of its own), RNA labelled, ATAC labels hidden, peak-gene links "
        "of the hg38 annotation (gene body + 2 kb promoter), the default model and train(); "
        "batch_key: the donor column. FOSCTTM Euclidean, chance 0.5. Same-donor neighbours: "
        "share of each cell's 15 nearest cells of its modality from its own donor. "
        f"{common.threads_note(args)}."
        + (" QUICK MODE: smoke test, numbers meaningless." if args.quick else "")
    )
    common.publish(
        args,
        "bmmc_donors",
        "Both BMMC donors, with and without batch_key (benchmarks/bmmc_donors.py)",
        note,
        common.markdown_table(header, rows),
        {"runs": runs, "note": note},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
