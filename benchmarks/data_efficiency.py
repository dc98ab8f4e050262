"""Does data efficiency train faster? ``data_efficient_lm`` against ``nadamw_baseline``.

One workload, ``stdlib_lm_4x256`` (4 layers over 256-byte windows: random-LTD has
layers to act on), each arm with its documented defaults (self-tuning ruleset), the
same seeds, the same step budget (the workload's ``step_hint``; both submissions end
their schedule there) and an eval every ``--eval_every_steps`` steps (untimed, as in
AlgoPerf). Each run is one call of our runner in this process, kept under
``--out_dir``/runs; a finished run with the same flags is reused, so an interrupted
comparison resumes.

The target is set by a stated procedure before any data-efficiency run: the
baseline runs come first, and the workload's ``validation_target_value`` must equal
the median over seeds of the baseline's validation loss at ``step_hint``, rounded up
to 0.01 (the script stops with the value to declare if it does not).

Reported per run: time to target (AlgoPerf's score: submission time at the first
eval meeting the target), time to the baseline's median final validation loss
(unrounded), steps, final validation loss, tokens and layer tokens trained on
(``data_efficient_lm`` writes them at each eval into ``tokens.csv``; the baseline's
are ``steps * batch * seq_len``), train-step compilations and wall time; per arm the
medians and their ratios to the baseline. ``curves.png``: validation loss versus
submission time and versus tokens, every seed.

Variants of ``data_efficient_lm`` (``--variants``): the same submission with one
change to its ``ds_config.json`` (written under ``--out_dir``/arms).

Usage (from the repository root)::

  python benchmarks/data_efficiency.py                      # both arms, seeds 1 2 3
  python benchmarks/data_efficiency.py --variants ltd_only curriculum_only
  python benchmarks/data_efficiency.py --quick              # tiny model, ~25 s
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import math
import pathlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import _report

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKLOAD = "stdlib_lm_4x256"
BASELINE, DATA_EFFICIENT = "nadamw_baseline", "data_efficient_lm"
TINY = {"width": 16, "num_heads": 1, "mlp_dim": 32, "num_eval_train_examples": 8}
"""--quick's model (the evals' cost is attention's ``heads * 256^2`` per window)."""


_METRICS = ("data_sampling", "curriculum_learning", "curriculum_metrics")
_LTD = ("data_routing", "random_ltd")
def _no_rarity(config: dict) -> None:
    _block(config, _METRICS).pop("vocabularyrarity")


def _block(config: dict, path: Sequence[str]) -> dict:
    block = config["data_efficiency"]
    for key in path:
        block = block[key]
    return block


def _no_seqlen(config: dict) -> None:
    metric = _block(config, _METRICS)["seqlen_truncate"]
    metric["min_difficulty"] = metric["max_difficulty"]


def _no_ltd(config: dict) -> None:
    schedule = _block(config, (*_LTD, "random_ltd_schedule"))
    schedule["min_value"] = schedule["max_value"]


def _lr_by_steps(config: dict) -> None:
    _block(config, (*_LTD, "layer_token_lr_schedule")).clear()
    _block(config, (*_LTD, "layer_token_lr_schedule"))["enabled"] = False


VARIANTS: dict[str, tuple[str, list[Callable[[dict], None]]]] = {
    "ltd_only": ("random-LTD only: no curriculum (uniform windows at full length)",
                 [_no_rarity, _no_seqlen]),
    "curriculum_only": ("both curricula, no token dropping (kept length = max)", [_no_ltd]),
    "seqlen_ltd": ("random-LTD and the length curriculum, no rarity curriculum", [_no_rarity]),
    "lr_by_steps": ("the learning rate by steps (as the baseline), not by layer tokens",
                    [_lr_by_steps]),
}
"""Variant name -> (what changes, edits of the DeepSpeed config)."""


def write_variant(name: str, out_dir: pathlib.Path) -> str:
    """``submissions/data_efficient_lm`` with the variant's ``ds_config.json``; its path."""
    source = ROOT / "submissions" / DATA_EFFICIENT
    folder = out_dir / "arms" / name
    folder.mkdir(parents=True, exist_ok=True)
    config = copy.deepcopy(json.loads((source / "ds_config.json").read_text()))
    for change in VARIANTS[name][1]:
        change(config)
    shutil.copyfile(source / "submission.py", folder / "submission.py")
    (folder / "ds_config.json").write_text(json.dumps(config, indent=2) + "\n")
    lr = _block(config, (*_LTD, "layer_token_lr_schedule"))
    if lr.get("enabled"):  # the variant's own layer-token budget, as the shipped one's
        total = layer_token_budget(folder / "submission.py")
        share = lr["warmup_layer_tokens"] / lr["total_layer_tokens"]
        lr.update(total_layer_tokens=total, warmup_layer_tokens=int(share * total))
        (folder / "ds_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return str(folder / "submission.py")


def layer_token_budget(submission: pathlib.Path) -> int:
    """The layer tokens the submission's bucketed schedule computes over step_hint."""
    import importlib.util

    from algoperf_reinit_workloads import get_workload

    spec = importlib.util.spec_from_file_location(f"_de_{submission.parent.name}", submission)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    workload = get_workload(WORKLOAD, num_eval_train_examples=8)
    return module.planned_layer_tokens(workload, workload.step_hint)


def runner_args(submission: str, out_dir: pathlib.Path, name: str, seed: int,
                args: argparse.Namespace) -> list[str]:
    return [f"--workload={WORKLOAD}", f"--submission_path={submission}",
            "--tuning_ruleset=self", f"--experiment_dir={out_dir / 'runs'}",
            f"--experiment_name={name}_seed{seed}", f"--rng_seed={seed}",
            f"--eval_every_steps={args.eval_every_steps}", "--continue_past_target",
            "--nosave_checkpoints", "--noplot_run", "--progress=none", "--overwrite",
            # Both submissions end their schedule at step_hint themselves.
            *([f"--workload_kwargs={json.dumps(TINY)}", f"--max_global_steps={args.max_steps}"]
              if args.quick else [])]


def trial_dir(out_dir: pathlib.Path, name: str, seed: int) -> pathlib.Path:
    return out_dir / "runs" / f"{name}_seed{seed}" / f"{WORKLOAD}_jax" / "trial_1"


def _same_run(trial: pathlib.Path, flags: Any) -> bool:
    """Whether ``trial`` holds a finished run of these flags (then it is reused)."""
    summary, saved = trial / "summary.json", trial / "flags_0.json"
    if not (summary.is_file() and saved.is_file()):
        return False
    mine, theirs = flags.to_json_dict(), json.loads(saved.read_text())
    keys = ("workload", "workload_kwargs", "submission_path", "rng_seed", "eval_every_steps",
            "max_global_steps", "tuning_ruleset", "continue_past_target")
    return all(mine.get(k) == theirs.get(k) for k in keys)


def _warm_up(out_dir: pathlib.Path, args: argparse.Namespace) -> None:
    """A 2-step baseline run before the process's first measured run (not reported):
    JAX compiles its own small ops once per process, which would bias the first run."""
    from algoperf_reinit.runner import parse_flags, run

    if args.quick or getattr(args, "warmed_up", False):
        return
    args.warmed_up = True

    flags = [a for a in runner_args(str(ROOT / "submissions" / BASELINE / "submission.py"),
                                    out_dir, "warmup", 1, args)
             if not a.startswith(("--max_global_steps", "--eval_every_steps"))]
    run(parse_flags([*flags, "--max_global_steps=2", "--eval_every_steps=1"]),
        out=io.StringIO())


def run_arm(name: str, submission: str, seeds: Sequence[int], out_dir: pathlib.Path,
            args: argparse.Namespace) -> list[dict]:
    """Runs (or reuses) one arm's seeds; returns one record per run."""
    from algoperf_reinit.runner import parse_flags, run

    records = []
    for seed in seeds:
        flags = parse_flags(runner_args(submission, out_dir, name, seed, args))
        trial = trial_dir(out_dir, name, seed)
        if _same_run(trial, flags):
            print(f"  {name} seed {seed}: reused {trial.relative_to(out_dir)}", flush=True)
        else:
            _warm_up(out_dir, args)
            run(flags, out=io.StringIO())
        record = read_run(trial, name, seed)
        print(f"  {name} seed {seed}: final validation/loss {record['final_loss']:.4f} at step "
              f"{record['steps']}, submission time {record['submission_sec']:.1f} s, "
              f"trial wall time {record['wall_sec']:.0f} s", flush=True)
        records.append(record)
    return records


def read_run(trial: pathlib.Path, name: str, seed: int) -> dict:
    """One run's curve (step, submission time, validation loss, tokens, layer tokens)."""
    from algoperf_reinit_workloads import get_workload

    summary = json.loads((trial / "summary.json").read_text())
    meta = json.loads((trial / "meta_data_0.json").read_text())
    kwargs = json.loads(json.loads((trial / "flags_0.json").read_text())
                        .get("workload_kwargs") or "{}")
    workload = get_workload(WORKLOAD, **kwargs)
    batch = summary.get("global_batch_size") or meta.get("global_batch_size") or 32
    with (trial / "eval_measurements.csv").open() as f:
        evals = [r for r in csv.DictReader(f) if r.get("validation/loss")]
    tokens = {}
    if (trial / "tokens.csv").is_file():
        with (trial / "tokens.csv").open() as f:
            tokens = {int(r["global_step"]): (int(r["tokens"]), int(r["layer_tokens"]))
                      for r in csv.DictReader(f)}
    curve = []
    for r in evals:
        step = int(r["global_step"])
        dense = step * batch * workload.seq_len
        tok, layer = tokens.get(step, (dense, dense * workload.config["num_layers"]))
        curve.append((step, float(r["accumulated_submission_time"]),
                      float(r["validation/loss"]), tok, layer))
    return {"arm": name, "seed": seed, "curve": curve, "steps": curve[-1][0],
            "final_loss": curve[-1][2], "submission_sec": curve[-1][1], "tokens": curve[-1][3],
            "layer_tokens": curve[-1][4], "wall_sec": float(evals[-1]["total_duration"]),
            "compiles": summary.get("train_step_compilations")}


def time_to(record: dict, target: float) -> tuple[float, int | None]:
    """Submission time and step of the first eval with validation loss <= target."""
    for step, sec, loss, _, _ in record["curve"]:
        if loss <= target:
            return sec, step
    return math.inf, None


def procedure_target(baseline: Sequence[dict]) -> tuple[float, float]:
    """(the baseline's median final validation loss, that rounded up to 0.01)."""
    median = statistics.median(r["final_loss"] for r in baseline)
    return median, math.ceil(median * 100 - 1e-9) / 100


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "∞" if value is None or math.isinf(value) else format(value, spec)


def table(records: dict[str, list[dict]], target: float, reference: float) -> list[str]:
    """Per arm: times to the target and to the baseline's final loss, tokens, compiles."""
    def med(values):
        return statistics.median(values)

    base = records[BASELINE]
    ref_time = med(time_to(r, target)[0] for r in base)
    ref_loss_time = med(time_to(r, reference)[0] for r in base)
    ref_tokens = med(r["tokens"] for r in base)
    rows = []
    for name, runs in records.items():
        tt = [time_to(r, target) for r in runs]
        tl = [time_to(r, reference) for r in runs]
        median_tt, median_tl = med(t for t, _ in tt), med(t for t, _ in tl)
        rows.append((
            name, ", ".join(_fmt(t) for t, _ in tt), _fmt(median_tt),
            _fmt(median_tt / ref_time if math.isfinite(ref_time) else None, ".2f"),
            ", ".join("—" if s is None else str(s) for _, s in tt),
            _fmt(median_tl), _fmt(median_tl / ref_loss_time
                                  if math.isfinite(ref_loss_time) else None, ".2f"),
            ", ".join(f"{r['final_loss']:.3f}" for r in runs),
            f"{med(r['submission_sec'] for r in runs):.0f}",
            f"{med(r['tokens'] for r in runs) / 1e6:.2f} ({med(r['tokens'] for r in runs) / ref_tokens:.2f}x)",
            f"{med(r['layer_tokens'] for r in runs) / 1e6:.1f}",
            ", ".join(str(r["compiles"]) for r in runs)))
    return _report.table(
        ["arm", f"time to target {target:g} per seed [s]", "median [s]", "ratio",
         "steps to target", f"time to {reference:.4f} median [s]", "ratio",
         "final validation loss per seed", "submission time of the run [s]",
         "tokens [M]", "layer tokens [M]", "train-step compiles"], rows, "llllllllllll")


def plot(records: dict[str, list[dict]], target: float, path: pathlib.Path, title: str) -> None:
    """Validation loss versus submission time and versus tokens, every run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.2), dpi=110, sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, runs) in enumerate(records.items()):
        for j, r in enumerate(runs):
            c = [p for p in r["curve"] if p[0] > 1]  # the step-1 eval is off the scale
            kwargs = dict(color=colors[i % len(colors)], linewidth=1.3,
                          alpha=0.9 if j == 0 else 0.5, label=name if j == 0 else None)
            axes[0].plot([p[1] for p in c], [p[2] for p in c], **kwargs)
            axes[1].plot([p[3] / 1e6 for p in c], [p[2] for p in c], **kwargs)
    for ax, label in zip(axes, ("submission time [s] (evals not counted)",
                                "training tokens [M]"), strict=True):
        ax.axhline(target, color="black", linestyle="--", linewidth=1, label="target")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    losses = [p[2] for runs in records.values() for r in runs for p in r["curve"] if p[0] > 1]
    if losses:
        axes[0].set_ylim(min(losses) - 0.05, min(max(losses), target + 1.0))
    axes[0].set_ylabel("validation/loss [nats/byte]")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--variants", nargs="*", default=[], choices=sorted(VARIANTS),
                        help="also run these variants of data_efficient_lm")
    parser.add_argument("--no_shipped", action="store_true",
                        help="skip the shipped data_efficient_lm (variants only)")
    parser.add_argument("--eval_every_steps", type=int, default=40)
    parser.add_argument("--out_dir", type=pathlib.Path, default=None,
                        help="default benchmarks/data_efficiency (quick: a temporary one)")
    parser.add_argument("--quick", action="store_true", help="tiny model, 2 steps, 1 seed (~20 s)")
    args = parser.parse_args(argv)
    from algoperf_reinit_workloads import get_workload

    args.max_steps = 2 if args.quick else get_workload(WORKLOAD).step_hint
    if args.quick:
        args.seeds, args.eval_every_steps = [1], 2
    print("\n".join(_report.header("data_efficiency.py", argv,
                                   mode="quick" if args.quick else "full")), flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = pathlib.Path(tmp) if args.quick else (
            args.out_dir or ROOT / "benchmarks" / "data_efficiency")
        out_dir.mkdir(parents=True, exist_ok=True)
        submission = str(ROOT / "submissions" / "{}" / "submission.py")
        records = {BASELINE: run_arm(BASELINE, submission.format(BASELINE), args.seeds,
                                     out_dir, args)}
        reference, target = procedure_target(records[BASELINE])
        declared = get_workload(WORKLOAD).validation_target_value
        print(f"target procedure: baseline median final validation/loss {reference:.4f} -> "
              f"target {target:g}; {WORKLOAD} declares {declared:g}", flush=True)
        if not args.quick and abs(declared - target) > 1e-9:
            print(f"STOP: set {WORKLOAD}'s validation_target_value to {target:g} (the "
                  "procedure) before any data-efficiency run", flush=True)
            return 1
        if args.quick:
            target = declared
        if not args.no_shipped:
            records[DATA_EFFICIENT] = run_arm(DATA_EFFICIENT, submission.format(DATA_EFFICIENT),
                                              args.seeds, out_dir, args)
        for name in args.variants:
            records[f"de:{name}"] = run_arm(f"de_{name}", write_variant(name, out_dir),
                                            args.seeds, out_dir, args)
            for r in records[f"de:{name}"]:
                r["arm"] = f"de:{name}"
        lines = [f"### {WORKLOAD}: {', '.join(records)}; seeds {args.seeds}", "",
                 (f"Quick mode (a test of the machinery, not a result): {args.max_steps} "
                  f"steps, target {target:g} (the workload's)." if args.quick else
                  f"Step budget {args.max_steps} (step_hint), eval every "
                  f"{args.eval_every_steps} steps; target {target:g} = the baseline's median "
                  f"final validation loss {reference:.4f} rounded up to 0.01."), "",
                 *table(records, target, reference), ""]
        for name in args.variants:
            lines.append(f"- `de:{name}`: {VARIANTS[name][0]}")
        png = out_dir / "curves.png"
        plot(records, target, png, f"{WORKLOAD}: validation loss, seeds {args.seeds}"
             + (" (quick mode: a test of the machinery)" if args.quick else ""))
        lines += ["", f"![curves]({png.name})"]
        print("\n" + "\n".join(lines))
        if not args.quick:
            (out_dir / "results.md").write_text(
                "\n".join([*_report.header("data_efficiency.py", argv, mode="full"), "",
                           *lines]) + "\n")
    print("\n" + _report.footer(start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
