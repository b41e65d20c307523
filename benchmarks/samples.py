"""Several samples per modality: does ``batch_key`` keep the sample out of the latent?

Data: :func:`conaae_scverse.datasets.simulate_wide` with 3 samples (``n_samples=3``; each
sample has its own type proportions and, in each modality, its own depth and feature-wise
scaling of log-sd ``--effect``), regenerated for every seed (``random_state=seed``). The
everyday case: RNA labelled, ATAC labels hidden, no pairs; the simulation's peak -> gene
links as ``gene_links`` (the label prior); the true pairs only score.

Configurations (``--configs``):

- ``no_effect``: the same cells with ``sample_effect=0`` (only the composition differs
  between samples), no ``batch_key``: what the sample effect is measured against;
- ``effect``: with the sample effect, no ``batch_key``;
- ``batch_key``: with the sample effect, ``setup_mudata(batch_key="sample")``;
- ``query``: the same data, a reference model trained with ``batch_key`` on samples 0 and 1
  only, then sample 2 (its RNA labelled, its ATAC not) mapped onto it with
  ``ConAAE.load_query_data`` and ``--query-steps`` training steps of its new parameters.
  Compared with ``batch_key`` (all three samples from scratch): the accuracy of sample 2's
  ATAC labels and the training time; also reported: the accuracy of the query's own label
  prior on sample 2's ATAC cells, and the mapped model's before its query training;
- ``query_unfrozen``: as ``query`` with ``freeze_reference=False`` (every weight fine-tuned:
  the reference's embeddings move);
- ``scvi_rna``: the field's reference for the batch covariate, scvi-tools' ``SCVI`` fitted on
  the RNA counts alone with ``batch_key="sample"`` (default ``train()``); its latent is scored
  as the RNA rows of the others.

Reported per seed: FOSCTTM over all pairs (Euclidean; chance 0.5), the accuracy of the
predicted ATAC labels, and per modality the share of each cell's 15 nearest neighbours in
the latent (same modality) that come from its own sample. With samples mixed as far as their
compositions allow, that share is what ``no_effect`` gives (samples with different type
proportions share fewer neighbours than 1/3 would say); a sample kept apart raises it
towards 1.

Integration metrics (scverse's ``scib-metrics``, each scaled to [0, 1], higher better; per
modality, and jointly over both modalities' cells): iLISI of the sample (mixing), cLISI and
silhouette of the true type (conservation), and the batch silhouette of the sample within
types (mixing). Jointly, the batch is modality and sample (six batches). The ATAC types are
the simulation's truth (hidden from the model).

Examples
--------
python benchmarks/samples.py                   # 3 configs, 3 seeds
python benchmarks/samples.py --quick           # smoke test, small data
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no OpenMP spin-waiting on a busy machine

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
from wide import LABEL_KEY, simulated_links

SAMPLE_KEY = "sample"
CONFIGS = ("no_effect", "effect", "batch_key", "query", "query_unfrozen", "scvi_rna")
QUERY_CONFIGS = ("query", "query_unfrozen")
QUERY_SAMPLE = "sample_2"
N_NEIGHBOURS = 15
#: Neighbours of the LISI scores (scib's default perplexity of 30 uses 90).
N_LISI_NEIGHBOURS = 90
INTEGRATION_METRICS = ("ilisi", "clisi", "silhouette_label", "silhouette_batch")


def same_sample_share(latent: np.ndarray, samples: np.ndarray, k: int = N_NEIGHBOURS) -> float:
    """Mean share of each cell's ``k`` nearest other cells that come from its own sample."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(latent) - 1)
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(latent).kneighbors(latent)[1][:, 1:]
    return float(np.mean(samples[neighbours] == samples[:, None]))


def integration_scores(latent: np.ndarray, samples: np.ndarray, labels: np.ndarray) -> dict:
    """Sample mixing and type conservation of an embedding, by ``scib-metrics``."""
    import scib_metrics
    from scib_metrics.nearest_neighbors import NeighborsResults
    from sklearn.neighbors import NearestNeighbors

    latent = np.asarray(latent, dtype=np.float32)
    samples, labels = np.asarray(samples).astype(str), np.asarray(labels).astype(str)
    k = min(N_LISI_NEIGHBOURS, len(latent) - 1)
    distances, indices = NearestNeighbors(n_neighbors=k + 1).fit(latent).kneighbors(latent)
    # Each cell's own row is dropped, as scib-metrics' neighbour searches do.
    neighbours = NeighborsResults(indices=indices[:, 1:], distances=distances[:, 1:])
    return {
        "ilisi": float(scib_metrics.ilisi_knn(neighbours, samples)),
        "clisi": float(scib_metrics.clisi_knn(neighbours, labels)),
        "silhouette_label": float(scib_metrics.silhouette_label(latent, labels)),
        "silhouette_batch": float(scib_metrics.silhouette_batch(latent, labels, samples)),
    }


def simulate(sizes: dict, seed: int, *, effect: float):
    """The benchmark's simulation of one seed."""
    import conaae_scverse as ca

    return ca.datasets.simulate_wide(
        sizes["cells"],
        n_genes=sizes["genes"],
        n_peaks=sizes["peaks"],
        n_samples=3,
        sample_effect=effect,
        random_state=seed,
    )


def run_scvi(seed: int, sizes: dict) -> dict:
    """scvi-tools' SCVI on the RNA counts alone, with the sample as ``batch_key``."""
    import scvi

    common.quiet()
    scvi.settings.seed = seed
    rna = simulate(sizes, seed, effect=sizes["effect"])["rna"].copy()
    scvi.model.SCVI.setup_anndata(rna, batch_key=SAMPLE_KEY)
    model = scvi.model.SCVI(rna)
    start = time.perf_counter()
    model.train(max_epochs=sizes["max_epochs"], enable_progress_bar=False)
    seconds = time.perf_counter() - start
    latent = model.get_latent_representation()
    samples = rna.obs[SAMPLE_KEY].to_numpy()
    return {
        "config": "scvi_rna",
        "seed": seed,
        "same_sample": {"rna": same_sample_share(latent, samples)},
        "integration": {"rna": integration_scores(latent, samples, rna.obs[LABEL_KEY])},
        "train_s": seconds,
    }


def run_one(task: tuple[str, int, dict]) -> dict:
    """One seed of one configuration."""
    import conaae_scverse as ca

    config, seed, sizes = task
    if config == "scvi_rna":
        return run_scvi(seed, sizes)
    common.quiet()
    full = simulate(sizes, seed, effect=0.0 if config == "no_effect" else sizes["effect"])
    truth = full["atac"].obs[LABEL_KEY].astype(str).to_numpy()
    full["atac"].obs[LABEL_KEY] = np.full(full["atac"].n_obs, np.nan, dtype=object)
    in_query = {mod: (full[mod].obs[SAMPLE_KEY] == QUERY_SAMPLE).to_numpy() for mod in full.mod}
    mdata = full
    if config in QUERY_CONFIGS:
        mdata = common.subset_cells(full, ~in_query["rna"], ~in_query["atac"])
    ca.ConAAE.setup_mudata(
        mdata,
        labels_key=LABEL_KEY,
        gene_links=simulated_links(mdata),
        batch_key=None if config in ("no_effect", "effect") else SAMPLE_KEY,
    )
    model = ca.ConAAE(mdata, seed=seed)
    start = time.perf_counter()
    model.train(max_epochs=sizes["max_epochs"], enable_progress_bar=False)
    seconds = time.perf_counter() - start
    query_s = prior_acc = before_acc = None
    if config in QUERY_CONFIGS:
        reference_z = model.get_latent_representation(modality="atac")
        query_mdata = common.subset_cells(full, in_query["rna"], in_query["atac"])
        query = ca.ConAAE.load_query_data(query_mdata, model, freeze_reference=config == "query")
        query_truth = truth[in_query["atac"]]
        categories = np.asarray(query.label_categories_)
        if query.label_prior_ is not None:
            prior_codes = query.label_prior_.probabilities.argmax(axis=1)
            prior_acc = float(np.mean(categories[prior_codes] == query_truth))
        before = query.predict(query_mdata, modality="atac")
        before_acc = float(np.mean(np.asarray(before, dtype=str) == query_truth))
        start = time.perf_counter()
        query.train(
            max_epochs=common.epochs_for_steps(
                int(in_query["atac"].sum()), sizes["query_steps"], 256
            ),
            enable_progress_bar=False,
        )
        query_s = time.perf_counter() - start
        moved = float(
            np.abs(query.get_latent_representation(mdata, modality="atac") - reference_z).max()
        )
        # Every cell embedded by the query model: the reference's and the mapped ones.
        model, mdata = query, full
        ca.ConAAE.setup_mudata(mdata, labels_key=LABEL_KEY, batch_key=SAMPLE_KEY)
    model.write_results(mdata)
    latents = {mod: mdata[mod].obsm["X_conaae"] for mod in ("rna", "atac")}
    scores = common.score_alignment(mdata, latents["rna"], latents["atac"], metric="l2")
    predicted = mdata["atac"].obs["conaae_label"].astype(str).to_numpy()
    correct = predicted == truth
    types = {"rna": mdata["rna"].obs[LABEL_KEY].astype(str).to_numpy(), "atac": truth}
    samples = {mod: mdata[mod].obs[SAMPLE_KEY].astype(str).to_numpy() for mod in latents}
    integration = {
        mod: integration_scores(latents[mod], samples[mod], types[mod]) for mod in latents
    }
    integration["joint"] = integration_scores(
        np.vstack([latents["rna"], latents["atac"]]),
        # jointly, a sample of one modality is not the same batch as its namesake in the other
        np.concatenate([[f"{mod}:{s}" for s in samples[mod]] for mod in ("rna", "atac")]),
        np.concatenate([types["rna"], types["atac"]]),
    )
    return {
        "config": config,
        "seed": seed,
        "foscttm": scores["foscttm"],
        "atac_label_acc": float(np.mean(correct)),
        "query_atac_label_acc": float(np.mean(correct[in_query["atac"]])),
        "query_train_s": query_s,
        "query_prior_acc": prior_acc,
        "query_before_acc": before_acc,
        "reference_moved": moved if config in QUERY_CONFIGS else None,
        "same_sample": {
            mod: same_sample_share(z, mdata[mod].obs[SAMPLE_KEY].to_numpy())
            for mod, z in latents.items()
        },
        "integration": integration,
        "train_s": seconds,
    }


HEADER = (
    "config",
    "seed",
    "FOSCTTM",
    "ATAC label acc",
    "same-sample neighbours RNA",
    "same-sample neighbours ATAC",
    "sample 2 ATAC label acc",
    "query: prior acc, acc before training",
    "train s (query: reference)",
    "query train s",
    "reference ATAC latents moved (max abs)",
)


def _cell(value: float | None, spec: str) -> str:
    """A table cell; blank where a configuration does not measure it."""
    return "" if value is None else format(value, spec)


def alignment_row(run: dict) -> list[str]:
    """One run's row of the main table (``scvi_rna`` has no ATAC, so most cells are blank)."""
    same = run["same_sample"]
    return [
        run["config"],
        str(run["seed"]),
        _cell(run.get("foscttm"), ".3f"),
        _cell(run.get("atac_label_acc"), ".3f"),
        _cell(same.get("rna"), ".2f"),
        _cell(same.get("atac"), ".2f"),
        _cell(run.get("query_atac_label_acc"), ".3f"),
        ", ".join(_cell(run.get(key), ".3f") for key in ("query_prior_acc", "query_before_acc"))
        if run.get("query_before_acc") is not None
        else "",
        _cell(run["train_s"], ".0f"),
        _cell(run.get("query_train_s"), ".0f"),
        _cell(run.get("reference_moved"), ".1e"),
    ]


def integration_row(run: dict) -> list[str]:
    """One run's scib-metrics scores: RNA, ATAC and joint, blank where not measured."""
    cells = [run["config"], str(run["seed"])]
    for part in ("rna", "atac", "joint"):
        scores = run["integration"].get(part, {})
        cells += [_cell(scores.get(metric), ".3f") for metric in INTEGRATION_METRICS]
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_standard_arguments(
        parser, seeds=3, threads=1, quick="smoke test: small data", first_seed=True
    )
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--cells", type=int, default=3000, help="cells per modality")
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--peaks", type=int, default=5000)
    parser.add_argument(
        "--effect", type=float, default=1.0, help="log-sd of the sample effect (default 1.0)"
    )
    parser.add_argument(
        "--query-steps", type=int, default=80, help="training steps of the mapped sample"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.cells, args.genes, args.peaks, args.seeds, args.query_steps = 300, 200, 400, 1, 10
    sizes = {
        "cells": args.cells,
        "genes": args.genes,
        "peaks": args.peaks,
        "effect": args.effect,
        "query_steps": args.query_steps,
        "max_epochs": 5 if args.quick else None,  # None: the default train()
    }
    tasks = [(c, s, sizes) for s in common.seed_range(args) for c in args.configs]
    runs = common.run_tasks(
        run_one,
        tasks,
        jobs=args.jobs,
        threads=args.threads,
        on_result=common.print_run,
    )
    ordered = sorted(runs, key=lambda r: (CONFIGS.index(r["config"]), r["seed"]))
    table = common.markdown_table(HEADER, [alignment_row(r) for r in ordered])
    integration = common.markdown_table(
        [
            "config",
            "seed",
            *(
                f"{m} {part}"
                for part in ("RNA", "ATAC", "joint")
                for m in ("iLISI", "cLISI", "label sil", "batch sil")
            ),
        ],
        [integration_row(r) for r in ordered],
    )
    table += "\n\n## Integration metrics (scib-metrics)\n\n" + integration
    note = (
        f"`simulate_wide({args.cells}, n_genes={args.genes}, n_peaks={args.peaks}, "
        f"n_samples=3, sample_effect={args.effect} (0 for no_effect), random_state=seed)`; RNA "
        "labelled, ATAC labels hidden, the simulation's peak -> gene links as gene_links; "
        "unpaired training on all cells with the default train(). Same-sample neighbours: "
        f"share of each cell's {N_NEIGHBOURS} nearest cells of its modality in the latent "
        "that come from its own sample (no_effect: the level the compositions allow). "
        f"query: reference on samples 0-1, sample 2 mapped with {args.query_steps} steps; its "
        "row scores every cell embedded by the mapped model; query_unfrozen: the same with "
        "freeze_reference=False. scvi_rna: scvi-tools' SCVI on "
        "the RNA counts alone with batch_key='sample' (default train()). Integration metrics: "
        "scib-metrics' iLISI (sample mixing), cLISI and label silhouette (type conservation) "
        f"and batch silhouette (mixing within types), on {N_LISI_NEIGHBOURS} neighbours, "
        "scaled to [0, 1], higher better; jointly the batch is modality and sample; ATAC types "
        "are the hidden truth. "
        f"{common.threads_note(args)}."
    )
    common.publish(
        args,
        "samples",
        "Several samples per modality (benchmarks/samples.py)",
        note,
        table,
        {"runs": runs, "note": note},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
