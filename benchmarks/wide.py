"""Default ``train()`` on wide inputs: time, memory and alignment quality at 20k x 100k.

Data: :func:`conaae_scverse.datasets.simulate_wide` (multinomial counts; by default 10k cells
per modality, 20k genes at ~5 % non-zero, 100k peaks at ~2 % non-zero, 8 cell types),
regenerated for every seed (``random_state=seed``). The everyday case: RNA labelled, ATAC
labels hidden, no pairs; training on all cells of both modalities, the true pairs used only
to score. The label prior (``--prior``) is ``links`` by default: the simulation's own
peak -> gene links (``atac.var["gene"]``) registered as ``gene_links``, as a user with peak
coordinates gets them from ``pp.link_peaks_to_genes``; ``ot`` uses none.

Configurations (``--configs``):

- ``default``: today's defaults, each modality projected on 100 principal axes of its
  standardised features (``n_input_components=100``);
- ``full_width``: the previous default, every standardised feature into the networks
  (``n_input_components=0``). On 2 cores this takes about half an hour per run.
- ``no_link_anchors``: the default without the anchors of the links prior
  (``loss_weights={"link_anchor": 0}``, the default before them): their cost and effect.
- ``no_link_consistency``: the default without the link consistency term
  (``loss_weights={"link_consistency": 0}``, the default before it): its cost and effect.
- ``depth_invariance``: the default with the ``depth_invariance`` loss (weight 10, off by
  default), both modalities projected, so their thinned counts are projected once per model.
- ``classifier_holds_pseudo_labels``: the default with ``pseudo_label_loss="classifier"``
  (the share of ATAC cells with a pseudo-label moves that share of the contrastive weight
  to the classifier), the default since ``pseudo_label_loss="auto"`` (links prior here);
- ``triplet_holds_pseudo_labels``: the default with ``pseudo_label_loss="contrastive"``, the
  default before ``"auto"``;
- ``normalize_log1p``: the default with ``input_transform="normalize_log1p"`` (each cell's
  counts scaled to the median total before log1p, off by default);
- ``atac_normalize_depth_invariance``: the ATAC counts scaled per cell
  (``input_transform={"atac": "normalize_log1p"}``) and the ``depth_invariance`` loss, set
  explicitly: the default with the links prior since it became so;
- ``links_plain``: what the links prior ran with before that, log1p counts and no depth
  invariance (``input_transform="log1p"``, ``loss_weights={"depth_invariance": 0}``), the
  default of the results written before the change.

The other configurations change one thing of today's default: results written before the
change compare against the earlier default.

Each run happens in a fresh process (peak RSS per run) and reports the time of each stage:
``setup`` (``setup_mudata`` + ``ConAAE(...)``: moments, projection, label prior), ``train``
(the default ``train()``), ``write`` (``write_results()``); FOSCTTM of all pairs (Euclidean,
lower is better, chance 0.5) and the accuracy of the predicted ATAC labels.

Examples
--------
python benchmarks/wide.py                          # default config, 3 seeds
python benchmarks/wide.py --configs full_width --seeds 1
python benchmarks/wide.py --configs full_width --first-seed 1 --seeds 2 --out DIR
python benchmarks/wide.py --quick                  # smoke test, small sizes
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no OpenMP spin-waiting on a busy machine

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

CONFIGS = {
    "default": {},
    "full_width": {"n_input_components": 0},
    "no_link_anchors": {"loss_weights": {"link_anchor": 0}},
    "no_link_consistency": {"loss_weights": {"link_consistency": 0}},
    "depth_invariance": common.DEPTH_INVARIANCE,
    "classifier_holds_pseudo_labels": {"pseudo_label_loss": "classifier"},
    "triplet_holds_pseudo_labels": {"pseudo_label_loss": "contrastive"},
    "normalize_log1p": {"input_transform": "normalize_log1p"},
    "atac_normalize_depth_invariance": common.ATAC_DEPTH,
    "links_plain": common.LINKS_PLAIN,
}
LABEL_KEY = "cell_type"


def simulated_links(mdata) -> ad.AnnData:
    """Peaks x genes links of ``simulate_wide``'s ground truth (one gene per peak)."""
    genes = pd.Index(mdata["rna"].var_names)
    columns = genes.get_indexer(mdata["atac"].var["gene"])
    n_peaks = len(columns)
    matrix = sparse.csr_matrix(
        (np.ones(n_peaks, dtype=np.float32), (np.arange(n_peaks), columns)),
        shape=(n_peaks, len(genes)),
    )
    return ad.AnnData(
        X=matrix,
        obs=pd.DataFrame(index=mdata["atac"].var_names),
        var=pd.DataFrame(index=genes),
    )


def run_one(config: str, seed: int, args: argparse.Namespace) -> dict:
    """One seed of one configuration, in this process."""
    import conaae_scverse as ca

    stages = {}

    def stage(name: str, start: float, cpu: float) -> None:
        stages[name] = {
            "wall_s": time.perf_counter() - start,
            "cpu_s": time.process_time() - cpu,
            "peak_rss_mb": common.peak_rss_mb(),
        }

    start, cpu = time.perf_counter(), time.process_time()
    mdata = ca.datasets.simulate_wide(
        args.cells, n_genes=args.genes, n_peaks=args.peaks, random_state=seed
    )
    truth = mdata["atac"].obs[LABEL_KEY].astype(str).to_numpy()
    mdata["atac"].obs[LABEL_KEY] = np.full(mdata["atac"].n_obs, np.nan, dtype=object)
    stage("generate", start, cpu)

    start, cpu = time.perf_counter(), time.process_time()
    links = simulated_links(mdata) if args.prior == "links" else None
    ca.ConAAE.setup_mudata(mdata, labels_key=LABEL_KEY, gene_links=links)
    model = ca.ConAAE(mdata, seed=seed, **CONFIGS[config])
    stage("setup", start, cpu)

    start, cpu = time.perf_counter(), time.process_time()
    model.train(enable_progress_bar=False, accelerator=args.accelerator)
    stage("train", start, cpu)
    steps = int(model.history["train_loss"].shape[0])

    start, cpu = time.perf_counter(), time.process_time()
    model.write_results()
    stage("write", start, cpu)

    scores = common.score_alignment(
        mdata, mdata["rna"].obsm["X_conaae"], mdata["atac"].obsm["X_conaae"], metric="l2"
    )
    predicted = mdata["atac"].obs["conaae_label"].astype(str).to_numpy()
    prior = model.label_prior_
    prior_acc = prior_confident = None
    if prior is not None:
        guess = np.asarray(model.label_categories_)[prior.probabilities.argmax(axis=1)]
        prior_acc = float(np.mean(guess == truth))
        prior_confident = float(
            np.mean(prior.confidence >= model.hyperparameters_.prior_confidence)
        )
    return {
        "config": config,
        "seed": seed,
        "prior": args.prior,
        "prior_acc": prior_acc,
        "prior_confident": prior_confident,
        "n_components": model.n_components_,
        "epochs": steps,
        "foscttm": scores["foscttm"],
        "atac_label_acc": float(np.mean(predicted == truth)),
        "stages": stages,
    }


def _in_subprocess(config: str, seed: int, argv: list[str]) -> dict:
    command = [sys.executable, __file__, *argv, "--one", json.dumps([config, seed])]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return {"config": config, "seed": seed, "error": (done.stderr or done.stdout)[-2000:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_standard_arguments(
        parser, seeds=3, threads=None, quick="smoke test: small data", first_seed=True
    )
    parser.add_argument("--configs", nargs="+", default=["default"], choices=list(CONFIGS))
    parser.add_argument("--cells", type=int, default=10_000, help="cells per modality")
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--peaks", type=int, default=100_000)
    parser.add_argument("--prior", choices=["links", "ot"], default="links", help="label prior")
    parser.add_argument("--accelerator", default="cpu", help="'cpu' (default), 'gpu' or 'auto'")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one run, JSON [config, seed]
    args = parser.parse_args(argv)
    if args.quick:
        args.cells, args.genes, args.peaks, args.seeds = 1500, 2000, 8000, 1
    if args.one is not None:
        common.start_worker(args.threads)
        config, seed = json.loads(args.one)
        print("RESULT " + json.dumps(run_one(config, seed, args)))
        return 0

    load = common.load_average()
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--quick"]
    forwarded += ["--cells", str(args.cells), "--genes", str(args.genes)]
    forwarded += ["--peaks", str(args.peaks), "--prior", args.prior]
    # One run at a time: each is timed, so runs must not compete for the cores.
    runs = []
    for config in args.configs:
        for seed in common.seed_range(args):
            print(f"{config}, seed {seed} ...", flush=True)
            runs.append(_in_subprocess(config, seed, forwarded))
            print(json.dumps(runs[-1])[:400], flush=True)

    rows = []
    for r in runs:
        if "error" in r:
            rows.append([r["config"], r["seed"], "FAILED", r["error"][-120:], *[""] * 5])
            continue
        s = r["stages"]
        rows.append(
            [
                r["config"],
                r["seed"],
                f"{r['prior_acc']:.3f} ({r['prior_confident']:.0%})"
                if r["prior_acc"] is not None
                else "",
                f"{r['foscttm']:.3f}",
                f"{r['atac_label_acc']:.3f}",
                f"{s['setup']['wall_s']:.0f}",
                f"{s['train']['wall_s']:.0f} ({r['epochs']} epochs)",
                f"{s['write']['wall_s']:.0f}",
                f"{max(v['peak_rss_mb'] for v in s.values()) / 1024:.1f}",
            ]
        )
    header = [
        "config",
        "seed",
        f"{args.prior} prior acc (confident)",
        "FOSCTTM",
        "ATAC label acc",
        "setup s",
        "train s",
        "write s",
        "peak RSS GB",
    ]
    note = (
        f"`simulate_wide({args.cells}, n_genes={args.genes}, n_peaks={args.peaks}, "
        f"random_state=seed)`; RNA labelled, ATAC labels hidden, {args.prior} label prior "
        "(links: the simulation's peak -> gene links); unpaired training on all cells; "
        f"FOSCTTM (Euclidean) over all pairs, chance 0.5. {common.threads_note(args)}, "
        f"accelerator={args.accelerator!r}, one run at a time, each in its own process. "
        f"Load average (1, 5, 15 min) at the start: {load}."
    )
    common.publish(
        args,
        "wide",
        "Default training on wide inputs (benchmarks/wide.py)",
        note,
        common.markdown_table(header, rows),
        {"runs": runs, "note": note},
    )
    return 0 if all("error" not in r for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
