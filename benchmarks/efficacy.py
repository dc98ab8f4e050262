"""Does it train faster? An AlgoPerf-style study of every submission on our runner.

External tuning as AlgoPerf scores it (see ``_study.py``): per study ``K`` trials
from the submission's ``tuning_search_space.json``; a study's score is its fastest
trial's time to target (∞ when missed), the submission's the median over ``S``
studies; ratios against ``nadamw_baseline`` from the same invocation. The same
``K``, ``S`` and trial seeds for every arm, all fixed before any run.

Workloads: each bundled workload's own ``step_hint``, target and runtime budget (set
when the workload was made, from ``nadamw_baseline`` runs: ``workloads/README.md``),
never tuned to an arm; every trial's step budget is the ``step_hint`` (our
submissions end their schedule there).

Presets:

* ``--quick`` (~10 s, for the test suite): digits, two arms, one trial.
* default (a smoke run, under an hour on 2 CPU cores): digits ``K=3, S=3``,
  stdlib_lm ``K=1, S=1``; its tables say so.
* ``--full`` (hours; run it in the background): ``K=5, S=3`` on every workload.

Each finished trial is cached under ``--out_dir``/cache, so an interrupted study
resumes. Writes ``results.md`` (tables), ``curves_<workload>.png`` (validation
metric versus submission time) and ``profile.png`` (AlgoPerf's performance profile)
into ``--out_dir`` (default ``benchmarks/efficacy/<preset>``).

Usage (from the repository root)::

  python benchmarks/efficacy.py --quick
  python benchmarks/efficacy.py                     # smoke run, < 1 h
  nohup python benchmarks/efficacy.py --full > efficacy_full.log &
  python benchmarks/efficacy.py --full --report_only    # tables from what has run
  python benchmarks/efficacy.py --full --cost_curves    # each arm's cost curve, once

``--workloads`` runs some of a preset's workloads (e.g. one process per core, each
pinned with ``taskset``); every invocation writes the tables of every workload whose
trials are all cached. The ``--full`` cache is committed
(``benchmarks/efficacy/full/cache/``), so a study that outlives one machine resumes
on the next.

Times: a ``--full`` study outlives one machine, and machines differ in speed (the
same baseline run took 1.41x longer in one session than in another). ``--cost_curves``
measures each arm's cost curve once, every arm one after another in one process
(``_cost.py``); where every arm has one, the scores are times on the curves (a
trial's steps to target priced at its arm's measured cost), with the measured
times beside them.

``--ablations`` adds ablation arms (``_ablations.py``: one change each to a shipped
submission), one study each by default. With ``--ablation_points`` the ablation
study is paired: every arm runs the same points of the ``K·S``, each with the same
seed, so two arms differ only in what the ablation changes; a second table gives
each arm's time (or final metric) per point.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pathlib
import sys
import time
from collections.abc import Callable, Mapping

import _ablations
import _cost
import _profiles
import _report
import _study
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROCEDURE = ("the workload's own step_hint, target and max_allowed_runtime_sec, set when it "
             "was made from nadamw_baseline runs (workloads/README.md); step budget = step_hint")
WORKLOADS = {
    "digits": _study.Workload("digits", "digits", max_steps=2000, eval_every=20,
                              procedure=PROCEDURE),
    "stdlib_lm": _study.Workload("stdlib_lm", "stdlib_lm", max_steps=2000, eval_every=100,
                                 procedure=PROCEDURE),
    "stdlib_lm_4x256": _study.Workload(
        "stdlib_lm_4x256", "stdlib_lm_4x256", max_steps=400, eval_every=40,
        procedure="step_hint 400 (one baseline run about 10 minutes on one core); target the "
        "baseline's median validation loss at step_hint over seeds 1-3, rounded up to 0.01 "
        "(benchmarks/data_efficiency.py checks it); step budget = step_hint"),
}
APPLIES_TO: dict[str, tuple[str, ...]] = {"data_efficient_lm": ("stdlib_lm_4x256",)}
"""Submissions meant for some workloads only (default: every workload)."""

PRESETS = {
    "quick": {"workloads": {"digits": (1, 1)}, "arms": ("nadamw_baseline", "nadamw_reinit"),
              "max_steps": 300},
    "smoke": {"workloads": {"digits": (3, 3), "stdlib_lm": (1, 1)}},
    "full": {"workloads": {"digits": (5, 3), "stdlib_lm": (5, 3), "stdlib_lm_4x256": (5, 3)}},
}
"""Preset → ``{workload: (K, S)}``, optional arm list and step cap."""


def discover_arms() -> list[_study.Arm]:
    """Every ``submissions/<name>/submission.py`` with a search space beside it."""
    arms = []
    for path in sorted((ROOT / "submissions").glob("*/submission.py")):
        if (path.parent / "tuning_search_space.json").is_file():
            name = path.parent.name
            arms.append(_study.Arm(name, str(path.relative_to(ROOT)),
                                   workloads=APPLIES_TO.get(name)))
    return arms


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "∞" if value is None or math.isinf(value) else format(value, spec)


TimeOf = Callable[[dict], float]


def timing(results: list[dict], curves: dict) -> dict[str, TimeOf]:
    """Workload → a trial's time on its arm's cost curve, for each workload on which
    every arm in ``results`` has a curve (its own or, for an ablation, its base's)."""
    base_of = _ablations.BASE_OF
    out: dict[str, TimeOf] = {}
    for workload in sorted({r["workload"] for r in results}):
        arms = {r["arm"] for r in results if r["workload"] == workload}
        if all(_cost.curve_of(curves, workload, a, base_of) is not None for a in arms):
            out[workload] = lambda r, w=workload: _cost.time_on_curve(
                r, _cost.curve_of(curves, w, r["arm"], base_of))
    return out


def curve_x(curves: dict, workload: str) -> Callable[[dict, np.ndarray], np.ndarray]:
    """A trial's eval steps → their times on its arm's cost curve (for the plots)."""
    def x_of(result: dict, steps: np.ndarray) -> np.ndarray:
        curve = _cost.curve_of(curves, workload, result["arm"], _ablations.BASE_OF)
        return np.interp(steps, curve["steps"], curve["sec"])
    return x_of


def _time_of(times: Mapping[str, TimeOf]) -> TimeOf:
    """A trial's time: on its cost curve where ``times`` has its workload, else measured."""
    return lambda r: times[r["workload"]](r) if r["workload"] in times else _study.trial_time(r)


def _medians(rows: list[dict], time_of: TimeOf) -> tuple[dict, dict]:
    per_study = _study.study_scores(rows, time_of)
    return per_study, {key: _study.median_score(v) for key, v in per_study.items()}


def score_table(results: list[dict], workload: str, time_of: TimeOf | None = None
                ) -> list[str]:
    """Per arm: study scores, the median, its ratio, steps and final metric.

    With ``time_of`` (times on the cost curves) the scores are those times, and the
    measured medians and ratios stand beside them.
    """
    rows_of = [r for r in results if r["workload"] == workload]
    per_study, medians = _medians(rows_of, time_of or _study.trial_time)
    ratio = _study.ratios(medians)
    _, measured = _medians(rows_of, _study.trial_time)
    measured_ratio = _study.ratios(measured)
    rows = []
    for (w, arm), studies in sorted(per_study.items()):
        mine = [r for r in rows_of if r["arm"] == arm]
        steps = sorted(r["steps_to_target"] for r in mine if r["reached"])
        finals = [r["final_metric"] for r in mine if r["final_metric"] is not None]
        best_final = (min(finals) if mine[0]["lower_is_better"] else max(finals)) if finals \
            else None
        extra = ((_fmt(measured[w, arm]), _fmt(measured_ratio[w, arm], ".2f"))
                 if time_of else ())
        rows.append((arm, ", ".join(_fmt(s) for s in studies), _fmt(medians[w, arm]),
                     _fmt(ratio[w, arm], ".2f"), *extra,
                     f"{sum(r['reached'] for r in mine)}/{len(mine)}",
                     str(steps[0]) if steps else "—", _fmt(best_final, ".4f"),
                     str(max(r["train_step_compilations"] for r in mine))))
    where = " on the cost curves" if time_of else ""
    columns = ["arm", f"study scores{where} [s]", "median [s]", "ratio to baseline",
               *(("measured median [s]", "measured ratio") if time_of else ()),
               "trials reaching target", "fewest steps to target", "best final metric",
               "max train-step compiles"]
    return _report.table(columns, rows, "l" * len(columns))


def profile_table(results: list[dict], time_of: TimeOf = _study.trial_time) -> list[str]:
    """ρ(τ) at τ = 1, 1.5, 2, 4 per arm, over the workloads every arm ran."""
    _, scores = _medians(results, time_of)
    taus = (1.0, 1.5, 2.0, 4.0)
    profile = _profiles.performance_profile(scores, taus)
    return _report.table(["arm", *(f"ρ(τ={t:g})" for t in taus)],
                         [(arm, *(f"{v:.2f}" for v in values))
                          for arm, values in sorted(profile.items())], "lllll")


def _curve_note(curves: dict, workload: str) -> str:
    mine = [c for k, c in curves.items() if k.startswith(f"{workload}/")]
    when = sorted(c["finished_utc"] for c in mine)
    return (f"Scores are times on each arm's cost curve (its submission time per eval step "
            f"at its defaults, every arm run one after another in one process, "
            f"{when[0]}-{when[-1]} UTC; `_cost.py`): the same machine for every trial. The "
            "measured times stand beside them.")


def write_outputs(results: list[dict], out_dir: pathlib.Path, *, preset: str,
                  header: list[str], plan: dict,
                  missing: dict[str, tuple[int, int]] | None = None,
                  curves: dict | None = None) -> list[str]:
    """Tables (returned and written to ``results.md``) and the PNGs.

    ``missing`` maps a workload of ``plan`` whose trials are not all cached to
    ``(cached, planned)``: it gets a progress line instead of tables (a study with
    trials still to run has no score yet) and stays out of the performance profile.
    ``curves`` (``_cost.load``): on a workload where every arm has a cost curve, the
    scores are times on the curves, with the measured ones beside them.
    """
    missing = missing or {}
    curves = curves or {}
    times = timing(results, curves)
    label = {"smoke": " (smoke run: too few trials for conclusions)",
             "quick": " (quick mode: a test of the machinery, not a result)"}.get(preset, "")
    short = {"smoke": " — smoke run", "quick": " — quick mode"}.get(preset, "")
    lines = [*header, "", f"## Efficacy study, preset {preset}{label}", ""]
    done = [w for w in plan if w not in missing]
    for workload, (k, s) in plan.items():
        w = WORKLOADS[workload]
        lines += [f"### {workload}: K={k} trials × S={s} studies{label}", "",
                  f"Budget, step_hint and target: {w.procedure}.", ""]
        if workload in missing:
            have, planned = missing[workload]
            lines += [f"In progress: {have} of {planned} trials cached; tables when all "
                      "have run.", ""]
            continue
        if workload in times:
            lines += [_curve_note(curves, workload), ""]
        lines += [*score_table(results, workload, times.get(workload)), ""]
        on_curve = {} if workload not in times else {
            "time_of": times[workload], "x_of": curve_x(curves, workload),
            "x_label": "submission time on the arm's cost curve [s] (evals not counted)"}
        png = _profiles.plot_curves(results, workload, out_dir / f"curves_{workload}.png",
                                    title=f"{workload}: each study's deciding trial{short}",
                                    **on_curve)
        lines += [f"![{workload}]({png.name})", ""]
    finished = [r for r in results if r["workload"] in done]
    if finished:
        _, scores = _medians(finished, _time_of(times))
        png = _profiles.plot_profile(_profiles.performance_profile(scores),
                                     out_dir / "profile.png",
                                     title=f"performance profile over {len(done)} "
                                     f"workload(s){short}")
        on = [w for w in done if w in times]
        lines += [f"### Performance profile ({', '.join(done)})", "",
                  *([f"Times on the cost curves on {', '.join(on)}; measured elsewhere.", ""]
                    if on else []),
                  *profile_table(finished, _time_of(times)), "", f"![profile]({png.name})",
                  ""]
    (out_dir / "results.md").write_text("\n".join(lines) + "\n")
    return lines


def ablation_table(results: list[dict], workload: str, time_of: TimeOf | None = None
                   ) -> list[str]:
    """Per ablation arm: what changed, its study scores and the ratios (on the cost
    curves with ``time_of``)."""
    rows_of = [r for r in results if r["workload"] == workload]
    _, medians = _medians(rows_of, time_of or _study.trial_time)
    to_baseline = _study.ratios(medians)
    rows = []
    for (w, arm), value in sorted(medians.items()):
        base, change = (_ablations.ABLATIONS[arm][:2] if arm in _ablations.ABLATIONS
                        else (arm, "(as shipped)"))
        ref = medians.get((w, base))
        to_base = None if ref is None or math.isinf(ref) else value / ref
        rows.append((arm, change, _fmt(value), _fmt(to_baseline[w, arm], ".2f"),
                     _fmt(to_base, ".2f")))
    where = " on the cost curves" if time_of else ""
    return _report.table(["arm", "change", f"median{where} [s]", "ratio to baseline",
                          "ratio to its base"], rows, "lllll")


def paired_table(results: list[dict], workload: str, points: list[int],
                 time_of: TimeOf | None = None) -> list[str]:
    """Per ablation arm and point: time to target (steps), or ∞ and the final metric."""
    rows_of = [r for r in results if r["workload"] == workload]
    arms = sorted({r["arm"] for r in rows_of})
    time_of = time_of or _study.trial_time

    def cell(arm: str, point: int) -> str:
        mine = sorted((r for r in rows_of if r["arm"] == arm and r["point_index"] == point),
                      key=lambda r: r["study"])
        return "; ".join(
            f"{_fmt(time_of(r))} s ({r['steps_to_target']} steps)" if r["reached"]
            else f"∞ (final {_fmt(r['final_metric'], '.3f')})" for r in mine) or "—"
    lr = {r["point_index"]: r["hparams"].get("learning_rate") for r in rows_of
          if r.get("hparams")}
    head = [f"point {p}" + (f" (lr {lr[p]:.2g})" if lr.get(p) else "") for p in points]
    return _report.table(["arm", *head], [(arm, *(cell(arm, p) for p in points))
                                          for arm in arms], "l" * (len(points) + 1))


def run_ablations(args: argparse.Namespace, config: dict, workloads: list[str],
                  out_dir: pathlib.Path, curves: dict) -> list[str]:
    """Runs the ablation arms next to their bases and the baseline on ``workloads``;
    their tables."""
    names = args.ablations or list(_ablations.ABLATIONS)
    bases = {_study.BASELINE, *(_ablations.ABLATIONS[n][0] for n in names)}
    ablation_arms = [a for a in discover_arms() if a.name in bases]
    for name in names:
        submission, space = _ablations.write_arm(name, out_dir)
        ablation_arms.append(_study.Arm(name, submission, space,
                                        fingerprint=repr(_ablations.config(name))))
    points = args.ablation_points
    design = (f"paired: every arm on points {points} of the K·S Halton points, trial i of "
              "a study on the i-th with the same seed in every arm" if points else
              "K points per study, assigned to each arm at random as in the main study")
    lines = [f"## Ablations ({args.ablation_studies} study each; {design})", ""]
    for workload, (k, _) in config["workloads"].items():
        if workload not in workloads:
            continue
        w = _workload(workload, config)
        specs = _study.plan_trials(ablation_arms, [w], num_trials=k,
                                   num_studies=args.ablation_studies, seed=args.seed,
                                   points=points)
        lines += [f"### {workload}: K={k}" + (f", points {points}" if points else ""), ""]
        if args.report_only or args.cost_curves:
            results, todo = _study.cached(specs, out_dir / "cache")
            if todo:
                lines += [f"In progress: {len(results)} of {len(specs)} trials cached.", ""]
                continue
        else:
            results = _study.run_all(specs, out_dir / "cache",
                                     log=lambda line: print(line, flush=True))
        time_of = timing(results, curves).get(workload)
        if time_of:
            lines += [_curve_note(curves, workload), ""]
        lines += [*ablation_table(results, workload, time_of), ""]
        if points:
            lines += [*paired_table(results, workload, points, time_of), ""]
    return lines


def measure_curves(arms: list[_study.Arm], workloads: list[str], config: dict,
                   out_dir: pathlib.Path, seed: int) -> dict:
    """Measures the cost curve of every arm on ``workloads`` not yet in the curves'
    file (one after another in this process; the file is rewritten after each)."""
    folder = out_dir / _cost.DIR
    curves = _cost.load(folder)
    for workload in workloads:
        w = _workload(workload, config)
        todo = [a for a in arms if a.applies_to(w) and _cost.key(workload, a.name) not in curves]
        print(f"cost curves on {workload}: {len(todo)} to measure", flush=True)
        if todo:
            _study.warm_up(w)
        for arm in todo:
            curve = _cost.measure(arm.name, ROOT / arm.submission, w,
                                  rng_seed=_study.trial_seed(seed, 0, 0))
            curves[_cost.key(workload, arm.name)] = curve
            _cost.save(folder, curve)
            print(f"cost curve {workload} {arm.name}: {curve['sec'][-1]:.1f} s to step "
                  f"{curve['steps'][-1]} (wall {curve['wall_sec']:.0f} s)", flush=True)
    return curves


def _workload(name: str, config: dict) -> _study.Workload:
    w = WORKLOADS[name]
    return dataclasses.replace(w, max_steps=config["max_steps"]) if "max_steps" in config else w


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="~10 s test of the machinery")
    mode.add_argument("--full", action="store_true", help="K=5, S=3 everywhere (hours)")
    parser.add_argument("--arms", nargs="+", help="submission names (default: every one)")
    parser.add_argument("--workloads", nargs="+", metavar="NAME",
                        help="run only these workloads of the preset (the tables still cover "
                        "all of them, from the cache); e.g. one process per core")
    parser.add_argument("--report_only", action="store_true",
                        help="run nothing: write the tables from the cached trials "
                        "(workloads with trials still to run get a progress line)")
    parser.add_argument("--ablations_only", action="store_true",
                        help="with --ablations: run only the ablation study (the main "
                        "tables come from the cache, as with --report_only)")
    parser.add_argument("--seed", type=int, default=20261202,
                        help="fixes point assignment and trial seeds (default %(default)s)")
    parser.add_argument("--out_dir", type=pathlib.Path, default=None)
    parser.add_argument("--ablations", nargs="*", default=None, metavar="NAME",
                        help="also run ablation arms (all, or the names given: "
                        f"{', '.join(_ablations.ABLATIONS)}), with their base submission")
    parser.add_argument("--ablation_studies", type=int, default=1,
                        help="studies per ablation arm (default %(default)s: one seed each)")
    parser.add_argument("--ablation_points", type=int, nargs="+", default=None, metavar="I",
                        help="paired ablations: every arm on these indices of the K·S points "
                        "(same seed per point in every arm) instead of K random ones")
    parser.add_argument("--cost_curves", action="store_true",
                        help="measure each arm's cost curve on the workloads (those not yet "
                        f"in <out_dir>/{_cost.DIR}/; one run each at its defaults), then "
                        "write the tables from the cache; scores are then times on them")
    args = parser.parse_args(argv)
    if args.ablations_only and args.ablations is None:
        parser.error("--ablations_only needs --ablations")
    if args.ablation_points is not None and args.ablations is None:
        parser.error("--ablation_points needs --ablations")
    unknown = sorted(set(args.ablations or ()) - set(_ablations.ABLATIONS))
    if unknown:  # before anything runs
        parser.error(f"--ablations: unknown {unknown}; known: {list(_ablations.ABLATIONS)}")
    preset = "quick" if args.quick else "full" if args.full else "smoke"
    config = PRESETS[preset]
    names = args.arms or config.get("arms")
    arms = [a for a in discover_arms() if names is None or a.name in names]
    absent = sorted(set(names or ()) - {a.name for a in arms})
    if absent:
        parser.error(f"--arms: no submission {absent} with a tuning_search_space.json")
    out_dir = args.out_dir or ROOT / "benchmarks" / "efficacy" / preset
    out_dir.mkdir(parents=True, exist_ok=True)
    header = _report.header("efficacy.py", argv, mode=preset)
    print("\n".join(header), flush=True)
    start = time.perf_counter()
    plan = config["workloads"]
    chosen = args.workloads or list(plan)
    unknown = sorted(set(chosen) - set(plan))
    if unknown:
        parser.error(f"--workloads: {unknown} not in preset {preset} (its workloads: "
                     f"{list(plan)})")
    if args.ablation_points is not None:  # before anything runs
        for workload in chosen:
            try:
                _study.check_points(args.ablation_points,
                                    plan[workload][0] * args.ablation_studies)
            except ValueError as error:
                parser.error(f"--ablation_points on {workload}: {error}")
    curves = (measure_curves(arms, chosen, config, out_dir, args.seed) if args.cost_curves
              else _cost.load(out_dir / _cost.DIR))
    run_nothing = args.report_only or args.ablations_only or args.cost_curves
    results, missing = [], {}
    for workload, (k, s) in plan.items():
        w = _workload(workload, config)
        specs = _study.plan_trials(arms, [w], num_trials=k, num_studies=s, seed=args.seed)
        if workload in chosen and not run_nothing:
            results += _study.run_all(specs, out_dir / "cache",
                                      log=lambda line: print(line, flush=True))
            continue
        have, todo = _study.cached(specs, out_dir / "cache")
        results += have
        if todo:
            missing[workload] = (len(have), len(specs))
    lines = write_outputs(results, out_dir, preset=preset, header=header, plan=plan,
                          missing=missing, curves=curves)
    if args.ablations is not None:
        lines += run_ablations(args, config, chosen, out_dir, curves)
        (out_dir / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[len(header):]))
    print(f"written: {out_dir / 'results.md'}")
    print(_report.footer(start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
