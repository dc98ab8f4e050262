"""Regenerates the schedule gallery: PNGs plus a README.md listing them.

Usage (from the repository root)::

  PYTHONPATH=. python plots/make_gallery.py            # writes into plots/
  PYTHONPATH=. python plots/make_gallery.py --out DIR  # writes into DIR

Every schedule figure is drawn with :func:`algoperf_reinit.plotting.plot_schedule`;
the last figure, a run's ``run_metrics.png``, comes from the default runner job
(``python -m algoperf_reinit.runner``, ~40 s, in a temporary directory) drawn by
:func:`algoperf_reinit.run_plot.draw_run_plot`. The output is deterministic:
rerunning the script with the same library versions rewrites byte-identical files.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import matplotlib
import numpy as np

from algoperf_reinit.__main__ import showcase_config
from algoperf_reinit.plotting import PlotEvent, plot_schedule
from algoperf_reinit.schedules import (
    CycleSpec,
    Decay,
    ScheduleConfig,
    Warmup,
    build_cycle_table,
    jax_lr_schedule,
    pytorch_cosine_warm_restarts,
    table_from_cycles,
    timm_cosine,
)

DPI = 100


class GalleryEntry(NamedTuple):
    """One gallery entry: file name, one-line description, and a builder.

    The builder returns the keyword arguments of ``plot_schedule`` (``table`` and
    any of ``budget``, ``clock``, ``title``, ``events``, ``eval_points``).
    """

    name: str
    description: str
    build: Callable[[], dict[str, Any]]


def _baseline() -> dict[str, Any]:
    hp = {"learning_rate": 1e-3, "warmup_factor": 0.05}
    table = jax_lr_schedule(10_000, hp).schedule
    return dict(table=table, title="AlgoPerf baseline: linear warmup (5 %) + cosine decay, "
                "1 cycle, 10,000 steps")


def _shape_cycles(warmups: Sequence[Warmup], decays: Sequence[Decay], *, warmup: float,
                  end_value: float, init_value: float = 0.0) -> Any:
    cycles = [
        CycleSpec(length=1000, warmup=warmup, peak=1e-3, init_value=init_value,
                  end_value=end_value, warmup_shape=w, decay_shape=d)
        for w, d in zip(warmups, decays, strict=True)
    ]
    return table_from_cycles(cycles)


def _warmup_shapes() -> dict[str, Any]:
    warmups = [Warmup.none(), Warmup.linear(), Warmup.cosine(), Warmup.exponential(),
               Warmup.polynomial(2.0), Warmup.log()]
    table = _shape_cycles(warmups, [Decay.cosine()] * len(warmups), warmup=400,
                          end_value=0.0, init_value=1e-5)
    return dict(table=table, title="Warmup shapes (40 % warmup from 1e-5, one per cycle): none, "
                "linear, cosine,\nexponential, polynomial(2), log")


def _decay_shapes() -> dict[str, Any]:
    decays = [Decay.constant(), Decay.cosine(), Decay.cosine(exponent=2.0), Decay.linear(),
              Decay.polynomial(2.0), Decay.wsd(0.3, "linear"), Decay.wsd(0.3, "1-sqrt")]
    table = _shape_cycles([Warmup.linear()] * len(decays), decays, warmup=50, end_value=0.0)
    return dict(table=table, title="Interpolating decays, one per cycle: constant, cosine, "
                "cosine(exponent 2), linear,\npolynomial(2), WSD linear (30 %), WSD 1-sqrt (30 %)")


def _decay_laws() -> dict[str, Any]:
    decays = [Decay.exponential(0.1), Decay.exponential(0.6, transition_steps=150,
                                                        staircase=True),
              Decay.rsqrt(), Decay.rsqrt(timescale=20.0)]
    table = _shape_cycles([Warmup.linear()] * len(decays), decays, warmup=50, end_value=5e-5)
    return dict(table=table, title="Decays with a law of their own (floor 5e-5): exponential "
                "(x0.1 per cycle),\nexponential staircase (x0.6 every 150), rsqrt (tau = warmup), "
                "rsqrt (tau = 20)")


def _warm_restarts() -> dict[str, Any]:
    config = ScheduleConfig(num_cycles=4, cycle_mul=2.0, cycle_decay=0.6, end_factor=0.01)
    table = build_cycle_table(config, 15_000, 1e-3, 0.05)
    return dict(table=table, title="Warm restarts: 4 cycles, cycle_mul 2, cycle_decay 0.6, "
                "end_factor 0.01, 15,000 steps")


def _seed_alterations() -> dict[str, Any]:
    hp = {"learning_rate": 2e-3, "warmup_factor": 0.05}
    schedule, _, reinit_steps = jax_lr_schedule(10_000, hp, showcase_config(2e-3, 3))
    events = [PlotEvent(s, "reinit") for s in reinit_steps]
    events.append(PlotEvent(9_200, "early_stop", "plateau"))
    return dict(table=schedule, budget=10_000, events=events,
                eval_points=list(range(0, 9_201, 400)),
                title="Seed-style alterations: short first cycle, alter_lr (0, +5e-4, -5e-4), "
                "alter_warmup (0, 0.02, 0)\nwith re-inits, evals every 400 steps and an early "
                "stop")


def _pytorch() -> dict[str, Any]:
    table = pytorch_cosine_warm_restarts(0.1, T_0=1000, budget=15_000, T_mult=2, eta_min=1e-3)
    return dict(table=table, title="PyTorch CosineAnnealingWarmRestarts(T_0=1000, T_mult=2, "
                "eta_min=1e-3), base_lr 0.1")


def _timm() -> dict[str, Any]:
    table = timm_cosine(5e-4, t_initial=3000, lr_min=1e-5, cycle_mul=1.5, cycle_decay=0.5,
                        cycle_limit=3, warmup_t=300, warmup_lr_init=1e-6, warmup_prefix=False)
    return dict(table=table, budget=16_000, title="timm CosineLRScheduler(t_initial=3000, "
                "cycle_mul=1.5, cycle_decay=0.5, cycle_limit=3,\nwarmup_t=300, lr_min=1e-5), "
                "then lr_min until 16,000 steps")


def _seconds() -> dict[str, Any]:
    config = ScheduleConfig(num_cycles=3, cycle_mul=1.5, clock="seconds", warmup_shapes="cosine")
    table = build_cycle_table(config, 8_000.0, 1e-3, 0.08)
    return dict(table=table, clock="seconds", title="Seconds clock: 3 cycles (cycle_mul 1.5, "
                "cosine warmup) over 8,000 s of submission time")


def _run_as_applied() -> dict[str, Any]:
    """A run's schedule as its lr_schedule.png shows it, from the library's own early stop."""
    from algoperf_reinit.reinit import end_cycle_early

    config = ScheduleConfig(num_cycles=3, cycle_decay=0.7)
    before = build_cycle_table(config, 2_000, 1e-3, 0.05, capacity=8)
    after = end_cycle_early(before, 1_040).table
    events = [PlotEvent(666, "reset"), PlotEvent(1_040, "early_stop"),
              PlotEvent(1_040, "reset")]
    events += [PlotEvent(s, "early_stop_skipped") for s in (1_640, 1_720, 1_880)]
    return dict(table=after, history=[(1_040, before)], events=events, stopped_at=1_900,
                title="A run as applied: a reset and an early stop at step 1,040 (stacked), the "
                "plan it cut (dotted),\nskipped early stops in the last cycle, training "
                "stopped at step 1,900")


FIGURES = (
    GalleryEntry(
        "01_algoperf_baseline.png", "One cycle, linear warmup + cosine decay: the AlgoPerf "
        "baseline (`jax_lr_schedule` defaults).", _baseline),
    GalleryEntry(
        "02_warmup_shapes.png", "Every warmup shape, one per cycle: none, linear, cosine, "
        "exponential, polynomial, log.", _warmup_shapes),
    GalleryEntry(
        "03_decay_shapes.png", "Interpolating decays, one per cycle: constant, cosine, "
        "cosine with exponent, linear, polynomial, warmup-stable-decay linear and 1-sqrt.",
        _decay_shapes),
    GalleryEntry(
        "04_decay_laws.png", "Decays with their own law and an end-value floor: "
        "exponential, exponential staircase, inverse square root (two timescales).",
        _decay_laws),
    GalleryEntry(
        "05_warm_restarts.png", "Warm restarts whose cycles grow (`cycle_mul=2`) and "
        "whose peaks shrink (`cycle_decay=0.6`).", _warm_restarts),
    GalleryEntry(
        "06_seed_alterations.png", "The seed design's per-cycle `alter_lr` / "
        "`alter_warmup` with a short first cycle (the schedule `python -m algoperf_reinit` "
        "draws), plus re-init, eval and early-stop markers.", _seed_alterations),
    GalleryEntry(
        "07_pytorch_cosine_warm_restarts.png", "The table equal to PyTorch's "
        "`CosineAnnealingWarmRestarts(T_0=1000, T_mult=2, eta_min=1e-3)`.", _pytorch),
    GalleryEntry(
        "08_timm_cosine.png", "The table equal to timm's `CosineLRScheduler` with "
        "warmup, `cycle_mul`, `cycle_decay` and `cycle_limit`.", _timm),
    GalleryEntry(
        "09_seconds_clock.png", "A schedule on the seconds clock (budget in seconds of "
        "submission time).", _seconds),
    GalleryEntry(
        "10_run_as_applied.png", "A run's `lr_schedule.png`: the table before an early stop "
        "(its cut plan dotted) and after it, a reset and an early stop at one step (stacked), "
        "skipped early stops (hollow), where training stopped; scientific tick labels.",
        _run_as_applied),
)


def _readme(figures: Sequence[GalleryEntry]) -> str:
    versions = (f"matplotlib {matplotlib.__version__}, jax {jax.__version__}, "
                f"numpy {np.__version__}")
    lines = [
        "# Schedule gallery",
        "",
        "Generated by `plots/make_gallery.py` with `algoperf_reinit.plotting.plot_schedule`",
        "(the last one: `algoperf_reinit.run_plot.draw_run_plot` on the default runner",
        "job); do not edit by hand. Regenerate from the repository root with:",
        "",
        "```",
        "PYTHONPATH=. python plots/make_gallery.py",
        "```",
        "",
        f"The output is byte-identical for the same library versions (last run: {versions}).",
        "",
        "| File | Shows |",
        "| --- | --- |",
    ]
    lines += [f"| [`{f.name}`]({f.name}) | {f.description} |" for f in figures]
    return "\n".join(lines) + "\n"


RUN_METRICS = GalleryEntry(
    "11_run_metrics.png", "The runner's second picture of a trial, `run_metrics.png` "
    "(`algoperf_reinit/run_plot.py`), of the default job (`python -m algoperf_reinit.runner`): "
    "validation metric with its target, training loss, the learning rate as applied, the "
    "events on every panel.", lambda: {})


def _run_metrics(out: pathlib.Path, dpi: int) -> pathlib.Path:
    """Runs the default runner job in a temporary directory and draws its trial."""
    from algoperf_reinit.run_plot import draw_run_plot

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "algoperf_reinit.runner", "--experiment_dir", tmp,
                        "--experiment_name", "default_job", "--progress", "none"],
                       check=True, stdout=subprocess.DEVNULL)
        (trial,) = pathlib.Path(tmp).glob("default_job/*/trial_1")
        return draw_run_plot(trial, path=out, dpi=dpi)


def make_gallery(out_dir: pathlib.Path, dpi: int = DPI) -> list[pathlib.Path]:
    """Writes every gallery PNG and the README into ``out_dir``.

    Args:
      out_dir: directory to write into (created if missing).
      dpi: PNG resolution.

    Returns:
      The written PNG paths, in gallery order.
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for figure in FIGURES:
        kwargs = figure.build()
        table = kwargs.pop("table")
        written.append(plot_schedule(table, out_dir / figure.name, dpi=dpi, **kwargs))
    written.append(_run_metrics(out_dir / RUN_METRICS.name, dpi))
    (out_dir / "README.md").write_text(_readme((*FIGURES, RUN_METRICS)), encoding="utf-8")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python plots/make_gallery.py [--out DIR] [--dpi N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).parent,
                        help="output directory (default: the directory of this script)")
    parser.add_argument("--dpi", type=int, default=DPI,
                        help="PNG resolution (default: %(default)s)")
    args = parser.parse_args(argv)
    paths = make_gallery(args.out, args.dpi)
    total = sum(p.stat().st_size for p in paths)
    for p in paths:
        print(f"{p.stat().st_size / 1024:7.1f} KiB  {p}")
    print(f"{len(paths)} PNGs, {total / 1024:.1f} KiB in total; README.md written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
