"""The ``conaae`` command line: ``run`` on an .h5mu file, ``demo`` on simulated data."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)


def _components(value: str) -> int | str:
    """``--input-components``: ``auto`` or an integer (checked by the model)."""
    try:
        return value if value == "auto" else int(value)
    except ValueError:
        msg = f"expected 'auto' or an integer, got {value!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _parser() -> argparse.ArgumentParser:
    from ._arguments import INPUT_TRANSFORMS

    parser = argparse.ArgumentParser(
        prog="conaae",
        description="Align single-cell RNA-seq and ATAC-seq with Con-AAE.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train on an .h5mu file and write the results into a copy")
    run.add_argument("input", help="input .h5mu file")
    run.add_argument("-o", "--output", required=True, help="output .h5mu file")
    run.add_argument("--rna-mod", default="rna", help="name of the RNA modality (default: rna)")
    run.add_argument(
        "--atac-mod", default="atac", help="name of the ATAC modality (default: atac)"
    )
    run.add_argument("--rna-layer", default=None, help="RNA layer (default: .X)")
    run.add_argument("--atac-layer", default=None, help="ATAC layer (default: .X)")
    run.add_argument("--labels-key", default=None, help="obs column with cell labels (optional)")
    run.add_argument(
        "--batch-key",
        default=None,
        help="obs column naming each cell's sample (donor, library), in one or both "
        "modalities (optional)",
    )
    run.add_argument(
        "--gene-annotation",
        default=None,
        metavar="FILE",
        help="BED/GTF/GFF3 gene annotation of the peaks' genome: peak-gene links tell the "
        "populations of an unlabelled modality apart (optional)",
    )
    run.add_argument(
        "--min-confidence",
        type=float,
        default=None,
        metavar="P",
        help="label cells whose label probability is below P 'unknown' (e.g. 0.5; "
        "default: label every cell)",
    )
    run.add_argument(
        "--max-epochs", type=int, default=None, help="training epochs (default: auto)"
    )
    run.add_argument(
        "--input-components",
        type=_components,
        default="auto",
        metavar="K",
        help="a modality with more than K features enters the networks as its scores on K "
        "principal axes (default: auto, 100 axes above 5,000 features; 0: every feature)",
    )
    run.add_argument(
        "--input-transform",
        choices=INPUT_TRANSFORMS,
        default="auto",
        help="how values enter the networks, in both modalities: log1p of counts, counts "
        "scaled per cell to the median total then log1p, or standardisation only (default: "
        "auto, log1p of counts and standardisation of anything else; with --gene-annotation "
        "and unlabelled ATAC cells, the ATAC counts scaled per cell first)",
    )
    run.add_argument(
        "--atac-input-transform",
        choices=INPUT_TRANSFORMS,
        default=None,
        help="the ATAC modality's own --input-transform (default: that of --input-transform)",
    )
    run.add_argument(
        "--depth-invariance",
        type=float,
        default=None,
        metavar="W",
        help="weight of the depth invariance loss: latents of thinned counts held to those of "
        "the full counts, so depth cannot place a cell (default: 10 where peak-gene links "
        "label the unlabelled cells, else 0, off)",
    )
    run.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    run.add_argument("--save-model", default=None, metavar="DIR", help="also save the model here")
    run.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    demo = sub.add_parser("demo", help="run the whole job on simulated paired RNA+ATAC data")
    demo.add_argument(
        "--output", default="demo_output", help="output folder (default: demo_output)"
    )
    demo.add_argument("--n-cells", type=int, default=1200, help="simulated cells (default: 1200)")
    demo.add_argument(
        "--max-epochs", type=int, default=None, help="training epochs (default: auto)"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _check_output(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        msg = f"{path} already exists; pass --overwrite to replace it"
        raise FileExistsError(msg)


def _run(args: argparse.Namespace) -> dict:
    import mudata

    from . import ConAAE
    from ._arguments import check_unknown_call

    source, target = Path(args.input), Path(args.output)
    if not source.is_file():
        msg = f"input file {source} not found"
        raise FileNotFoundError(msg)
    _check_output(target, args.overwrite)
    mdata = mudata.read_h5mu(source)
    links = None
    if args.gene_annotation is not None:
        from .pp import link_peaks_to_genes

        atac = mdata.mod[args.atac_mod] if args.atac_mod in mdata.mod else None
        rna = mdata.mod[args.rna_mod] if args.rna_mod in mdata.mod else None
        if atac is not None and rna is not None:  # else setup_mudata names the missing one
            links = link_peaks_to_genes(atac, args.gene_annotation, genes=rna.var_names)
    ConAAE.setup_mudata(
        mdata,
        rna_mod=args.rna_mod,
        atac_mod=args.atac_mod,
        rna_layer=args.rna_layer,
        atac_layer=args.atac_layer,
        labels_key=args.labels_key,
        gene_links=links,
        batch_key=args.batch_key,
    )
    model = ConAAE(
        mdata,
        seed=args.seed,
        n_input_components=args.input_components,
        input_transform=(
            args.input_transform
            if args.atac_input_transform is None
            else {"rna": args.input_transform, "atac": args.atac_input_transform}
        ),
        loss_weights=(
            None if args.depth_invariance is None else {"depth_invariance": args.depth_invariance}
        ),
    )
    if model.label_categories_:
        check_unknown_call(args.min_confidence, "unknown", model.label_categories_)
    start = time.perf_counter()
    model.train(args.max_epochs, enable_progress_bar=not args.quiet)
    seconds = time.perf_counter() - start
    model.write_results(min_confidence=args.min_confidence)
    mdata.write_h5mu(target)
    if args.save_model:
        model.save(args.save_model, overwrite=args.overwrite)
    return {
        "cells": {m: int(d.n_obs) for m, d in model.modalities_.items()},
        "train_seconds": round(seconds, 1),
        "output": str(target),
    }


def _demo(args: argparse.Namespace) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    import scanpy as sc

    from . import ConAAE, datasets, metrics
    from ._constants import OUTPUT_KEYS

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    mdata = datasets.simulate(n_cells=args.n_cells, random_state=args.seed)
    # Hide the labels of half of the ATAC cells: their predicted labels are then a real test.
    atac_obs = mdata["atac"].obs
    truth = atac_obs["batch"].copy()
    hidden = np.random.default_rng(args.seed).random(len(atac_obs)) < 0.5
    atac_obs["batch"] = truth.where(~hidden)
    ConAAE.setup_mudata(mdata, rna_mod="rna", atac_mod="atac", labels_key="batch")
    model = ConAAE(mdata, seed=args.seed)
    start = time.perf_counter()
    model.train(args.max_epochs, enable_progress_bar=not args.quiet)
    seconds = time.perf_counter() - start
    model.write_results()
    atac_obs["batch"] = truth  # the evaluation sees every true label again
    figures = metrics.evaluate_alignment(mdata, labels_key="batch")
    predicted = atac_obs[OUTPUT_KEYS.LABEL].astype(str).to_numpy()
    figures["hidden_atac_label_accuracy"] = float(
        np.mean(predicted[hidden] == truth.astype(str).to_numpy()[hidden])
    )
    mdata.write_h5mu(out / "demo.h5mu")

    joint = model.get_joint_adata()
    sc.pp.neighbors(joint, use_rep="X_conaae")
    sc.tl.umap(joint, random_state=args.seed)
    fig = sc.pl.umap(
        joint,
        color=["modality", "batch", "conaae_label"],
        wspace=0.4,
        show=False,
        return_fig=True,
    )
    fig.savefig(out / "umap.png", dpi=120, bbox_inches="tight")
    report = {
        "cells": {m: int(d.n_obs) for m, d in model.modalities_.items()},
        "train_seconds": round(seconds, 1),
        **{k: round(float(v), 4) for k, v in figures.items()},
        "h5mu": str(out / "demo.h5mu"),
        "umap": str(out / "umap.png"),
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    return report


def _quiet_dependencies() -> None:
    """Keep the terminal to the progress bar and the report: no banners or library notices."""
    import warnings

    from ._compat import disable_mudata_pull

    disable_mudata_pull()  # mudata's new default; silences its notice
    for name in ("lightning.pytorch", "lightning.fabric", "scvi"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Notices about Lightning's own internals or logging cadence, not about the user's data.
    for pattern in (".*LeafSpec.*", ".*smaller than the logging interval.*"):
        warnings.filterwarnings("ignore", message=pattern)


#: How the package's messages name an argument, and the option the command line uses instead.
_ARGUMENT_TO_OPTION = {
    **{f"`{role}_mod`": f"--{role}-mod" for role in ("rna", "atac")},
    **{f"`{role}_mod=`": f"--{role}-mod" for role in ("rna", "atac")},
    "pass labels_key=None": "leave out --labels-key",
    "pass batch_key=None": "leave out --batch-key",
    "rna_layer=": "--rna-layer ",
    "min_confidence must be": "--min-confidence must be",
    "n_input_components must be": "--input-components must be",
}


def _in_flags(message: str) -> str:
    """Reword an error message of the Python API for the command line."""
    for argument, option in _ARGUMENT_TO_OPTION.items():
        message = message.replace(argument, option)
    return message


def _print_report(title: str, report: dict) -> None:
    print(title)
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"  {key:<{width}}  {value}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``conaae`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    _quiet_dependencies()
    try:
        if args.command == "run":
            _print_report("conaae run: done", _run(args))
        else:
            _print_report("conaae demo: done (simulated paired RNA+ATAC)", _demo(args))
    except KeyboardInterrupt:
        print("conaae: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, KeyError, OSError) as err:
        # One clear line, not a traceback: every such error names the problem and the fix.
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"conaae: error: {_in_flags(str(message))}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
