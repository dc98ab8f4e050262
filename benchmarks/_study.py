"""An AlgoPerf-style external-tuning study on our runner: plan, run (cached), score.

AlgoPerf's external tuning ruleset (its DOCUMENTATION.md, "External Tuning Ruleset"):
``S`` studies of ``K`` trials; ``S·K`` quasirandom points of the submission's search
space, assigned at random to the studies; a trial's score is its submission time at
the first eval meeting the validation target (infinity when missed); a study's score
is its fastest trial; the submission's per-workload score is the median over studies
(infinities included).

Everything random is fixed by :func:`plan_trials` before any run: the assignment of
points to studies (a NumPy generator seeded by the study seed, per workload and arm)
and every trial's ``--rng_seed`` — the same seeds for every arm, so arms are paired
(trial ``i`` of study ``j`` starts from the same initial parameters and data order in
every arm of a workload).

Each finished trial is cached as one JSON file named by a hash of its spec
(:func:`trial_key`); a study that is interrupted resumes from the trials it finished.
The hash covers the submission's own files, so editing a submission re-runs its
trials; a change to the library that changes training does not show in it: bump
:data:`CACHE_VERSION` then.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import pathlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
BASELINE = "nadamw_baseline"
CACHE_VERSION = 2
"""Bumped when a cached result's meaning changes (old entries are then ignored)."""


@dataclasses.dataclass(frozen=True)
class Workload:
    """A workload of the study: a bundled workload, possibly a named variant.

    Attributes:
      name: the name in tables (e.g. ``'stdlib_lm'``, ``'stdlib_lm_short'``).
      workload: the runner's ``--workload``.
      kwargs: the runner's ``--workload_kwargs``.
      max_steps: the step budget of every trial (``--max_global_steps``).
      eval_every: ``--eval_every_steps`` (evals are untimed, as in AlgoPerf).
      procedure: how budget, ``step_hint`` and target were set (printed with the tables).
    """

    name: str
    workload: str
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    max_steps: int = 2000
    eval_every: int = 100
    procedure: str = ""


@dataclasses.dataclass(frozen=True)
class Arm:
    """One submission (or ablation of one) with its search space.

    Attributes:
      name: the name in tables.
      submission: path of the ``submission.py`` (relative to the repository root).
      search_space: path of its ``tuning_search_space.json`` (default: beside it).
      workloads: names of the workloads it applies to (``None``: every one).
      fingerprint: what else decides the arm's training, for the cache key (an
        ablation's configuration, which its generated ``submission.py`` only names).
    """

    name: str
    submission: str
    search_space: str | None = None
    workloads: tuple[str, ...] | None = None
    fingerprint: str = ""

    def applies_to(self, workload: Workload) -> bool:
        return self.workloads is None or workload.name in self.workloads

    @property
    def space_path(self) -> pathlib.Path:
        if self.search_space is not None:
            return ROOT / self.search_space
        return (ROOT / self.submission).parent / "tuning_search_space.json"


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    """One trial: arm × workload × study × trial, with its point and seed fixed."""

    arm: Arm
    workload: Workload
    study: int
    trial: int
    point_index: int
    num_points: int
    rng_seed: int


def trial_seed(seed: int, study: int, trial: int) -> int:
    """The ``--rng_seed`` of trial ``trial`` of study ``study`` (the same for every arm)."""
    return int(np.random.default_rng([seed, study, trial]).integers(1, 2**31 - 1))


def check_points(points: Sequence[int], total: int) -> None:
    """Raises ``ValueError`` unless ``points`` are distinct indices of ``total`` points."""
    if not points or any(not 0 <= p < total for p in points) or len(set(points)) != len(points):
        raise ValueError(f"points must be distinct indices in [0, {total}) (K·S points), "
                         f"got {list(points)}")


def plan_trials(arms: Sequence[Arm], workloads: Sequence[Workload], *, num_trials: int,
                num_studies: int, seed: int, points: Sequence[int] | None = None
                ) -> list[TrialSpec]:
    """Every trial of the study, ordered study → trial → workload → arm.

    Arms of one trial run next to each other, so a change of the machine's load
    affects them alike. Study ``j`` gets the points ``perm[j·K:(j+1)·K]`` of a random
    permutation of the first ``S·K`` Halton points (the permutation seeded by
    ``seed`` and the arm's and workload's names).

    ``points`` (a paired design, for ablations): instead, every study runs these
    indices of the ``S·K`` points, trial ``i`` on ``points[i]``, in every arm — so
    each arm meets each point with the same seed, and arms differ only in what
    they change.
    """
    if num_trials < 1 or num_studies < 1:
        raise ValueError(f"num_trials and num_studies must be >= 1, got {num_trials} and "
                         f"{num_studies}")
    total = num_trials * num_studies
    if points is not None:
        check_points(points, total)
    perms = {}
    for w in workloads:
        for a in arms:
            salt = list(hashlib.sha256(f"{a.name}/{w.name}".encode()).digest()[:4])
            perms[a.name, w.name] = np.random.default_rng([seed, *salt]).permutation(total)
    specs = []
    for study in range(num_studies):
        for trial in range(num_trials if points is None else len(points)):
            rng_seed = trial_seed(seed, study, trial)
            for w in workloads:
                for a in arms:
                    if a.applies_to(w):
                        point = (int(perms[a.name, w.name][study * num_trials + trial])
                                 if points is None else int(points[trial]))
                        specs.append(TrialSpec(a, w, study, trial, point, total, rng_seed))
    return specs


def _submission_files(arm: Arm) -> dict[str, str]:
    """The text of the ``.py`` and ``.json`` files in the arm's submission folder."""
    folder = (ROOT / arm.submission).parent
    return {p.name: p.read_text() for p in sorted(folder.iterdir())
            if p.suffix in (".py", ".json") and p.is_file()}


def _portable(path: str | None) -> str | None:
    """``path`` relative to the repository root when it lies inside it."""
    if path is None or not pathlib.Path(path).is_absolute():
        return path
    try:
        return pathlib.Path(path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path


def trial_key(spec: TrialSpec) -> str:
    """A stable name for the trial's cache file: its whole spec (paths inside the
    repository relative to it; not the workload's ``procedure`` prose), the search
    space's text and the submission folder's files."""
    fields = dataclasses.asdict(spec)
    for name in ("submission", "search_space"):  # the same key in any checkout
        fields["arm"][name] = _portable(fields["arm"][name])
    del fields["workload"]["procedure"]  # prose: editing it re-runs nothing
    text = json.dumps({"version": CACHE_VERSION, "spec": fields,
                       "space": spec.arm.space_path.read_text(),
                       "files": _submission_files(spec.arm)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def runner_args(spec: TrialSpec, experiment_dir: pathlib.Path) -> list[str]:
    """The runner's flags for one trial (external tuning, one point of ``S·K``)."""
    w = spec.workload
    return [f"--workload={w.workload}", f"--workload_kwargs={json.dumps(dict(w.kwargs))}",
            f"--submission_path={ROOT / spec.arm.submission}",
            f"--tuning_search_space={spec.arm.space_path}", "--tuning_ruleset=external",
            f"--num_tuning_trials={spec.num_points}",
            f"--hparam_start_index={spec.point_index}",
            f"--hparam_end_index={spec.point_index + 1}",
            f"--rng_seed={spec.rng_seed}", f"--max_global_steps={w.max_steps}",
            f"--eval_every_steps={w.eval_every}", f"--experiment_dir={experiment_dir}",
            "--experiment_name=trial", "--nosave_checkpoints", "--noplot_run", "--progress=none",
            "--overwrite"]


def _curve(eval_results: Iterable[tuple[int, Mapping[str, Any]]], metric: str
           ) -> list[list[float]]:
    return [[int(step), float(r["score"]), float(r.get(metric, math.nan)),
             float(r.get("train/loss", math.nan))] for step, r in eval_results]


def result_of(spec: TrialSpec, trial: Any, wall_sec: float) -> dict[str, Any]:
    """The cached record of a finished trial (a runner ``TrialResult``)."""
    s = trial.summary
    final = s.get("final_eval") or {}
    return {
        "arm": spec.arm.name, "workload": spec.workload.name, "study": spec.study,
        "trial": spec.trial, "point_index": spec.point_index, "rng_seed": spec.rng_seed,
        "hparams": s.get("hparams") or _hparams(trial),
        "reached": bool(s["reached"]), "time_to_target_sec": s["time_to_target_sec"],
        "steps_to_target": s["steps_to_target"], "global_steps": s["global_steps"],
        "target_metric": s["target_metric"], "target_value": s["target_value"],
        "lower_is_better": s["target_lower_is_better"],
        "final_metric": final.get(s["target_metric"]), "stop_reason": s["stop_reason"],
        "train_step_compilations": s["train_step_compilations"],
        "submission_time_sec": s["accumulated_submission_time"], "wall_sec": wall_sec,
        "curve": _curve(trial.eval_results, s["target_metric"]),
        "finished_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "load_average_1min": os.getloadavg()[0],
    }


def _hparams(trial: Any) -> dict[str, Any] | None:
    path = pathlib.Path(trial.trial_dir) / "hparams.json"
    return json.loads(path.read_text()) if path.is_file() else None


def run_trial(spec: TrialSpec) -> dict[str, Any]:
    """Runs one trial with the runner, in this process, in a temporary directory."""
    from algoperf_reinit.runner import parse_flags, run

    with tempfile.TemporaryDirectory() as tmp:
        start = time.monotonic()
        (trial,) = run(parse_flags(runner_args(spec, pathlib.Path(tmp))), out=io.StringIO())
        return result_of(spec, trial, time.monotonic() - start)


def warm_up(workload: Workload) -> None:
    """Two unreported baseline steps: JAX's one-off compilations of its own small ops
    for this workload's shapes would otherwise land on the first measured trial."""
    from algoperf_reinit.runner import parse_flags, run

    with tempfile.TemporaryDirectory() as tmp:
        run(parse_flags([
            f"--workload={workload.workload}",
            f"--workload_kwargs={json.dumps(dict(workload.kwargs))}",
            f"--submission_path={ROOT / 'submissions' / BASELINE / 'submission.py'}",
            "--tuning_ruleset=self", f"--experiment_dir={tmp}", "--experiment_name=warmup",
            "--max_global_steps=2", "--eval_every_steps=1", "--nosave_checkpoints",
            "--noplot_run", "--progress=none"]), out=io.StringIO())


def cached(specs: Sequence[TrialSpec], cache_dir: pathlib.Path
           ) -> tuple[list[dict[str, Any]], int]:
    """The cached results of ``specs`` (runs nothing) and how many are not cached yet."""
    results, missing = [], 0
    for spec in specs:
        path = cache_dir / f"{trial_key(spec)}.json"
        if path.is_file():
            results.append(json.loads(path.read_text()))
        else:
            missing += 1
    return results, missing


def run_all(specs: Sequence[TrialSpec], cache_dir: pathlib.Path, *,
            runner: Callable[[TrialSpec], dict[str, Any]] = run_trial,
            log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Runs every trial not in ``cache_dir`` (one JSON file each), with progress lines."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    results, start, ran = [], time.monotonic(), 0
    todo = sum(not (cache_dir / f"{trial_key(s)}.json").is_file() for s in specs)
    log(f"{len(specs)} trials, {len(specs) - todo} cached in {cache_dir}, {todo} to run")
    for n, spec in enumerate(specs, 1):
        path = cache_dir / f"{trial_key(spec)}.json"
        if path.is_file():
            results.append(json.loads(path.read_text()))
            continue
        if ran == 0 and runner is run_trial:
            warm_up(spec.workload)
        result = runner(spec)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, allow_nan=False, default=_no_nan))
        tmp.replace(path)
        results.append(json.loads(path.read_text()))
        ran += 1
        elapsed = time.monotonic() - start
        eta = elapsed / ran * (todo - ran)
        log(f"[{n}/{len(specs)}] {spec.workload.name} {spec.arm.name} study {spec.study} "
            f"trial {spec.trial}: {_fmt(result['time_to_target_sec'])} s to target "
            f"(steps {result['steps_to_target']}), wall {result['wall_sec']:.0f} s; "
            f"elapsed {elapsed / 60:.1f} min, about {eta / 60:.1f} min left")
    return results


def _no_nan(value: Any) -> Any:
    raise TypeError(f"not JSON: {value!r}")


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "∞" if value is None or math.isinf(value) else format(value, spec)


def trial_time(result: Mapping[str, Any]) -> float:
    """A trial's score: time to target, infinity when missed."""
    t = result["time_to_target_sec"]
    return math.inf if t is None or not result["reached"] else float(t)


def study_scores(results: Iterable[Mapping[str, Any]],
                 time_of: Callable[[Mapping[str, Any]], float] = trial_time
                 ) -> dict[tuple[str, str], list[float]]:
    """``(workload, arm)`` → each study's score (its fastest trial), by study number.

    ``time_of`` gives a trial's time (default: its measured time to target; the
    study's cost curves give another, ``_cost.time_on_curve``).
    """
    best: dict[tuple[str, str], dict[int, float]] = {}
    for r in results:
        studies = best.setdefault((r["workload"], r["arm"]), {})
        studies[r["study"]] = min(studies.get(r["study"], math.inf), time_of(r))
    return {key: [v[s] for s in sorted(v)] for key, v in best.items()}


def median_score(per_study: Sequence[float]) -> float:
    """The median over studies; infinities take part (AlgoPerf)."""
    return float(statistics.median(per_study)) if per_study else math.inf


def ratios(scores: Mapping[tuple[str, str], float], baseline: str = BASELINE
           ) -> dict[tuple[str, str], float | None]:
    """Each score over the baseline's on the same workload (``None`` without one)."""
    out: dict[tuple[str, str], float | None] = {}
    for (workload, arm), value in scores.items():
        ref = scores.get((workload, baseline))
        if ref is None or math.isinf(ref):
            out[workload, arm] = None
        else:
            out[workload, arm] = value / ref
    return out
