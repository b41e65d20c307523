"""Time to quality on CPU: Con-AAE's default ``train()`` vs the paper's recipe, on sci-CAR.

1. **Time to quality.** 20 % of the sci-CAR cells are held out (their true partners too); the
   model is trained on the other 80 %; metrics are computed on held-out cells only (FOSCTTM,
   recall@10/50 with l1, ATAC label accuracy, the paper's integration accuracy). Rows:
   the default ``ConAAE(mdata).train()``, and the paper's recipe run by the same code
   (``n_hidden="paper"``: hidden = input width; ``batch_size=32``, constant ``lr=1e-4``) for
   a fixed number of epochs in the same run (and, with ``--bf16``, the default with bfloat16
   matmuls). Its seconds per epoch are extrapolated to the paper's 101
   epochs (**extrapolated**, not measured) and the ratio to the default is reported.
2. **Throughput** (cells/s) of training on simulated sparse data, 1k to 100k cells, a fixed
   number of steps.
3. **Profile**: where a training step's time goes (data loading, forward/backward, triplet
   mining, Lightning overhead) and the cost of matching, with manual timers.

The machine may be shared with other jobs: wall times are noisy. CPU seconds
(``time.process_time``) are reported beside them and are steadier. By default torch uses every
core, as it does for users; on a busy machine use ``--threads 1`` (two threads competing with other
jobs on 2 cores were slower than one). ``--accelerator auto`` times a GPU where there is one.

Examples
--------
python benchmarks/speed.py
python benchmarks/speed.py --quick
python benchmarks/speed.py --bf16
python benchmarks/speed.py --paper-epochs 5 --sizes 1000 10000 100000
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

#: Held-out sci-CAR results of the Con-AAE paper (Table 1, Con-AAE row).
PAPER = {"integration_acc": 0.639, "recall@50_l1": 0.284, "foscttm": 0.345}
PAPER_EPOCHS = 101
TARGET_S = 60.0


def _train_eval(split, labels_key, seed, model_kwargs, train_kwargs, accelerator="cpu"):
    from conaae_scverse import ConAAE

    t0 = time.perf_counter()
    ConAAE.setup_mudata(split.train, labels_key=labels_key)
    model = ConAAE(split.train, seed=seed, **model_kwargs)
    t1, c1 = time.perf_counter(), time.process_time()
    model.train(
        accelerator=accelerator,
        enable_progress_bar=False,
        enable_model_summary=False,
        **train_kwargs,
    )
    t2, c2 = time.perf_counter(), time.process_time()
    result = common.evaluate(model, split, labels_key)
    epochs = int(model.trainer.current_epoch)
    # global_step counts optimizer steps: one autoencoder + one discriminator per minibatch
    steps = int(model.trainer.global_step) // len(model.trainer.optimizers)
    result.update(
        setup_s=t1 - t0,
        train_s=t2 - t1,
        train_cpu_s=c2 - c1,
        total_s=t2 - t0,
        epochs=epochs,
        steps=steps,
        s_per_epoch=(t2 - t1) / max(epochs, 1),
        cpu_s_per_epoch=(c2 - c1) / max(epochs, 1),
        n_parameters=int(sum(p.numel() for p in model.module.parameters())),
    )
    return result, model


def time_to_quality(args):
    labels_key = common.LABEL_KEYS["sci_car"]
    mdata = common.load_dataset("sci_car", args.data_dir)
    split = common.make_split(mdata, seed=args.seed)
    default_kwargs = {"max_epochs": 2} if args.quick else {}
    default, _ = _train_eval(split, labels_key, args.seed, {}, default_kwargs, args.accelerator)
    bf16 = None
    if args.bf16:
        # Same default model with bfloat16 matmuls (CPUs with AVX-512 BF16 / AMX, recent GPUs).
        bf16, _ = _train_eval(
            split,
            labels_key,
            args.seed,
            {},
            default_kwargs | {"precision": "bf16-mixed"},
            args.accelerator,
        )
    paper, _ = _train_eval(
        split,
        labels_key,
        args.seed,
        {"n_hidden": "paper"},
        {
            "max_epochs": args.paper_epochs,
            "batch_size": 32,
            "lr": 1e-4,
            "plan_kwargs": {"lr_schedule": "constant"},
        }
        | ({"limit_train_batches": 3} if args.quick else {}),
        args.accelerator,
    )
    paper["extrapolated_train_s"] = paper["s_per_epoch"] * PAPER_EPOCHS
    paper["extrapolated_train_cpu_s"] = paper["cpu_s_per_epoch"] * PAPER_EPOCHS
    reached = {
        "integration_acc": default.get("integration_acc", 0) >= PAPER["integration_acc"],
        "recall@50_l1": default["recall@50_l1"] >= PAPER["recall@50_l1"],
        "foscttm": default["foscttm"] <= PAPER["foscttm"],
    }
    return {
        "n_train_cells": split.n_train,
        "n_heldout": split.n_test,
        "default": default,
        "default_bf16": bf16,
        "paper_recipe": paper,
        "paper_reported": PAPER,
        "default_reaches_paper_quality": reached,
        "default_within_target_s": default["train_s"] <= TARGET_S,
        "speedup_vs_paper_extrapolated": paper["extrapolated_train_s"] / default["train_s"],
    }


def throughput(args):
    from scale import synthetic_mudata

    from conaae_scverse import ConAAE

    out = []
    for n in args.sizes:
        mdata = synthetic_mudata(n, args.tp_genes, args.tp_peaks, 0.08, 0.04, seed=args.seed)
        ConAAE.setup_mudata(mdata, labels_key="label")
        model = ConAAE(mdata, seed=args.seed)
        # first a warm-up step, then the timed steps
        model.train(
            max_epochs=1,
            limit_train_batches=1,
            train_size=1.0,
            accelerator=args.accelerator,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        t0, c0 = time.perf_counter(), time.process_time()
        per_epoch = min(args.steps, max(1, n // 256))  # minibatches per epoch
        epochs = -(-args.steps // per_epoch)
        model.train(
            max_epochs=epochs,
            limit_train_batches=per_epoch,
            train_size=1.0,
            accelerator=args.accelerator,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        n_batches = epochs * per_epoch
        cells = 2 * 256 * n_batches
        out.append(
            {
                "n_cells": n,
                "steps": n_batches,
                "wall_s": wall,
                "cpu_s": cpu,
                "cells_per_s": cells / wall,
                "cells_per_cpu_s": cells / cpu,
            }
        )
        del model, mdata
    return out


def profile(args):
    """Per-step cost of each part of a training step on the sci-CAR training cells."""
    import torch

    from conaae_scverse import ConAAE, _losses
    from conaae_scverse._data_module import ConAAEDataModule

    labels_key = common.LABEL_KEYS["sci_car"]
    split = common.make_split(common.load_dataset("sci_car", args.data_dir), seed=args.seed)
    ConAAE.setup_mudata(split.train, labels_key=labels_key)
    model = ConAAE(split.train, seed=args.seed)
    every = {k: np.arange(d.n_obs) for k, d in model.modalities_.items()}
    none = {k: np.array([], dtype=np.int64) for k in every}
    loader = ConAAEDataModule(model._network_inputs(), every, none, 256).train_dataloader()
    n_target = args.profile_steps

    def clock():
        return time.perf_counter(), time.process_time()

    def since(t):
        return time.perf_counter() - t[0], time.process_time() - t[1]

    batches, t = [], clock()
    while len(batches) < n_target:
        batches.extend(b for b, _ in zip(loader, range(n_target - len(batches)), strict=False))
    load = since(t)
    mod = model.module
    mod.train()
    opt = torch.optim.Adam(mod.autoencoder_parameters(), 1e-3, betas=(0.5, 0.999))
    dopt = torch.optim.Adam(mod.discriminator_parameters(), 1e-3, betas=(0.5, 0.999))
    fwd = bwd = 0.0
    fwd_c = bwd_c = 0.0
    for b in batches:
        t = clock()
        terms, z = mod.loss(b[0]["X"], b[1]["X"], b[0]["labels"], b[1]["labels"])
        w, c = since(t)
        fwd, fwd_c = fwd + w, fwd_c + c
        t = clock()
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        dl = mod.discriminator_loss(z["rna"], z["atac"])
        dopt.zero_grad()
        dl.backward()
        dopt.step()
        w, c = since(t)
        bwd, bwd_c = bwd + w, bwd_c + c
    zt = torch.randn(512, mod.n_latent, requires_grad=True)
    lab = torch.randint(0, 3, (512,))
    t = clock()
    for _ in batches:
        _losses.batch_hard_triplet(zt, lab, 0.3).backward()
    trip = since(t)
    n_steps_epoch = len(loader)
    epochs = max(1, n_target // n_steps_epoch)
    t = clock()
    model.train(
        max_epochs=epochs,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        train_size=1.0,
    )
    fit = since(t)
    fit_steps = epochs * n_steps_epoch
    t = clock()
    model.match_cells()
    match = since(t)
    n = len(batches)
    per = {
        "data loading": (load[0] / n, load[1] / n),
        "forward (all loss terms)": (fwd / n, fwd_c / n),
        "backward + optimizer steps": (bwd / n, bwd_c / n),
        "  of which triplet mining (fwd+bwd, 512 latents)": (trip[0] / n, trip[1] / n),
        "Lightning fit, per step (all included)": (fit[0] / fit_steps, fit[1] / fit_steps),
    }
    parts = load[0] / n + fwd / n + bwd / n
    per["Lightning overhead (fit - load - fwd - bwd)"] = (
        fit[0] / fit_steps - parts,
        fit[1] / fit_steps - (load[1] + fwd_c + bwd_c) / n,
    )
    return {
        "steps": n,
        "fit_epochs": epochs,
        "steps_per_epoch": n_steps_epoch,
        "per_step_ms": {k: [1e3 * v[0], 1e3 * v[1]] for k, v in per.items()},
        "match_cells_s": list(match),
        "n_cells_match": int(split.n_train),
    }


def render(res, args) -> str:
    pct = lambda v: common.fmt(v, percent=True)  # noqa: E731
    lines = ["# Speed (benchmarks/speed.py)", res["note"]]
    if "ttq" in res:
        q = res["ttq"]
        d, p = q["default"], q["paper_recipe"]
        hdr = [
            "run",
            "epochs",
            "steps",
            "train wall s",
            "train CPU s",
            "s/epoch",
            "integration ACC",
            "recall@10 l1",
            "recall@50 l1",
            "FOSCTTM",
            "ATAC label ACC",
            "params",
        ]

        def row(name, r, wall, cpu):
            return [
                name,
                r["epochs"],
                r["steps"],
                wall,
                cpu,
                f"{r['s_per_epoch']:.2f}",
                pct(r.get("integration_acc")),
                pct(r["recall@10_l1"]),
                pct(r["recall@50_l1"]),
                f"{r['foscttm']:.3f}",
                pct(r.get("atac_label_acc")),
                f"{r['n_parameters']:,}",
            ]

        rows = [
            row("Con-AAE default train()", d, f"{d['train_s']:.1f}", f"{d['train_cpu_s']:.1f}"),
        ]
        if q.get("default_bf16"):
            b = q["default_bf16"]
            rows.append(
                row(
                    "default, train(precision='bf16-mixed')",
                    b,
                    f"{b['train_s']:.1f}",
                    f"{b['train_cpu_s']:.1f}",
                )
            )
        rows += [
            row(
                f"paper recipe, {p['epochs']} epochs (measured)",
                p,
                f"{p['train_s']:.1f}",
                f"{p['train_cpu_s']:.1f}",
            ),
            [
                f"paper recipe, {PAPER_EPOCHS} epochs (EXTRAPOLATED from s/epoch)",
                PAPER_EPOCHS,
                "",
                f"~{p['extrapolated_train_s']:.0f}",
                f"~{p['extrapolated_train_cpu_s']:.0f}",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
            ],
            [
                "paper (reported, Table 1)",
                "101+",
                "",
                "",
                "",
                "",
                pct(PAPER["integration_acc"]),
                "",
                pct(PAPER["recall@50_l1"]),
                f"{PAPER['foscttm']:.3f}",
                "",
                "",
            ],
        ]
        lines += [
            f"## Time to quality, sci-CAR, {q['n_heldout']} held-out cells "
            f"(trained on {q['n_train_cells']})",
            common.markdown_table(hdr, rows),
            f"Extrapolated paper-recipe time / default time: "
            f"**{q['speedup_vs_paper_extrapolated']:.1f}x**. Default reaches the paper's "
            f"held-out quality: {q['default_reaches_paper_quality']}; within {TARGET_S:.0f} s "
            f"wall: {q['default_within_target_s']}.",
        ]
    if "throughput" in res:
        rows = [
            [
                r["n_cells"],
                r["steps"],
                f"{r['wall_s']:.1f}",
                f"{r['cpu_s']:.1f}",
                f"{r['cells_per_s']:.0f}",
                f"{r['cells_per_cpu_s']:.0f}",
            ]
            for r in res["throughput"]
        ]
        lines += [
            f"## Training throughput, simulated sparse data ({args.tp_genes} genes at 8 %, "
            f"{args.tp_peaks} peaks at 4 % non-zero), batch 256 + 256",
            common.markdown_table(
                ["cells/modality", "steps", "wall s", "CPU s", "cells/s", "cells/CPU-s"], rows
            ),
        ]
    if "profile" in res:
        pr = res["profile"]
        total = pr["per_step_ms"]["Lightning fit, per step (all included)"][1]
        rows = [
            [k, f"{v[0]:.1f}", f"{v[1]:.1f}", f"{100 * v[1] / total:.0f} %"]
            for k, v in pr["per_step_ms"].items()
        ]
        rows.append(
            [
                f"match_cells ({pr['n_cells_match']} x {pr['n_cells_match']}, exact, once)",
                f"{1e3 * pr['match_cells_s'][0]:.0f}",
                f"{1e3 * pr['match_cells_s'][1]:.0f}",
                "",
            ]
        )
        lines += [
            f"## Profile of a training step, sci-CAR, batch 256 ({pr['steps']} steps)",
            common.markdown_table(["part", "wall ms", "CPU ms", "share of CPU/step"], rows),
        ]
    return "\n\n".join(lines)


def _describe_machine(args) -> str:
    """Where the timings come from: device, threads, and how busy the machine was."""
    import torch

    if args.accelerator != "cpu" and torch.cuda.is_available():
        device = f"GPU {torch.cuda.get_device_name(0)} (accelerator={args.accelerator!r})"
    else:
        device = f"CPU only ({os.cpu_count()} cores)"
    return (
        f"{device}, torch threads = {args.threads}; load average (1, 5, 15 min) at the start: "
        f"{common.load_average()}. With other jobs running, wall times are pessimistic; CPU "
        "seconds are steadier. Extrapolated figures are marked as such."
        + (" QUICK MODE: smoke test, numbers meaningless." if args.quick else "")
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_standard_arguments(
        parser,
        seeds=1,
        threads=os.cpu_count(),
        quick="smoke test (seconds)",
        data_dir=True,
        first_seed=True,
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="also time the default with precision='bf16-mixed' (fast where the CPU has BF16)",
    )
    parser.add_argument(
        "--accelerator",
        default="cpu",
        help="'cpu' (default), 'gpu' or 'auto' for time to quality and throughput; the "
        "profile is always on the CPU",
    )
    parser.add_argument(
        "--paper-epochs",
        type=int,
        default=3,
        help="epochs of the paper recipe actually run (then extrapolated)",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--steps", type=int, default=20, help="timed steps for throughput")
    parser.add_argument("--tp-genes", type=int, default=2000)
    parser.add_argument("--tp-peaks", type=int, default=5000)
    parser.add_argument("--profile-steps", type=int, default=50)
    parser.add_argument("--skip", nargs="*", default=[], choices=["ttq", "throughput", "profile"])
    args = parser.parse_args(argv)
    args.seed = common.single_seed(parser, args)
    if args.quick:
        args.paper_epochs, args.sizes, args.steps, args.profile_steps = 1, [500], 2, 6
    import torch

    torch.set_num_threads(args.threads)
    common.quiet()
    res = {"note": _describe_machine(args)}
    t = time.perf_counter()
    if "ttq" not in args.skip:
        res["ttq"] = time_to_quality(args)
    if "profile" not in args.skip:
        res["profile"] = profile(args)
    if "throughput" not in args.skip:
        res["throughput"] = throughput(args)
    res["script_wall_s"] = time.perf_counter() - t
    text = render(res, args)
    print(text)
    common.write_report(args, "speed", text, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
