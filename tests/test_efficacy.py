"""The efficacy study's planning, scoring and performance profile (``benchmarks/``).

The study itself is a benchmark; these tests pin what its figures mean: AlgoPerf's
study score (fastest trial, ∞ when missed), the median over studies with
infinities, the point assignment fixed before any run and equal seeds across arms,
the cache that lets an interrupted study resume, and the performance profile.
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


study = _load("_study")
profiles = _load("_profiles")

BASE = study.Arm("nadamw_baseline", "submissions/nadamw_baseline/submission.py")
REINIT = study.Arm("nadamw_reinit", "submissions/nadamw_reinit/submission.py")
ONLY_LM = study.Arm("only_lm", "submissions/nadamw_cycles/submission.py",
                    workloads=("stdlib_lm",))
DIGITS = study.Workload("digits", "digits")
LM = study.Workload("stdlib_lm", "stdlib_lm")


def _result(arm, study_, trial, t, workload="digits"):
    return {"arm": arm, "workload": workload, "study": study_, "trial": trial,
            "reached": t is not None, "time_to_target_sec": t}


def test_plan_assigns_distinct_points_per_arm_and_equal_seeds_across_arms():
    specs = study.plan_trials([BASE, REINIT, ONLY_LM], [DIGITS, LM], num_trials=3,
                              num_studies=2, seed=7)
    # only_lm applies to stdlib_lm only: 3 arms on it, 2 on digits, 6 trials each.
    assert len(specs) == 6 * (2 + 3)
    for arm in ("nadamw_baseline", "nadamw_reinit"):
        for w in ("digits", "stdlib_lm"):
            points = [s.point_index for s in specs if s.arm.name == arm and s.workload.name == w]
            assert sorted(points) == list(range(6))  # each of S·K points exactly once
            assert {s.num_points for s in specs} == {6}
    seeds = {}
    for s in specs:
        seeds.setdefault((s.study, s.trial), set()).add(s.rng_seed)
    assert all(len(v) == 1 for v in seeds.values())  # paired arms
    assert len({next(iter(v)) for v in seeds.values()}) == 6  # distinct per trial
    # Fixed by the seed: the same plan twice, another one for another seed.
    again = study.plan_trials([BASE, REINIT, ONLY_LM], [DIGITS, LM], num_trials=3,
                              num_studies=2, seed=7)
    other = study.plan_trials([BASE, REINIT, ONLY_LM], [DIGITS, LM], num_trials=3,
                              num_studies=2, seed=8)
    assert [(s.point_index, s.rng_seed) for s in again] == [
        (s.point_index, s.rng_seed) for s in specs]
    assert [s.point_index for s in other] != [s.point_index for s in specs]


def test_plan_rejects_an_empty_study():
    with pytest.raises(ValueError, match="num_trials and num_studies must be >= 1, got 0"):
        study.plan_trials([BASE], [DIGITS], num_trials=0, num_studies=1, seed=1)


def test_runner_flags_select_one_point_of_all():
    (spec,) = study.plan_trials([BASE], [DIGITS], num_trials=1, num_studies=1, seed=1)
    args = study.runner_args(spec, pathlib.Path("x"))
    assert "--tuning_ruleset=external" in args
    assert "--num_tuning_trials=1" in args
    assert f"--hparam_start_index={spec.point_index}" in args
    assert f"--hparam_end_index={spec.point_index + 1}" in args
    assert f"--rng_seed={spec.rng_seed}" in args


def test_study_score_is_the_fastest_trial_and_a_missed_trial_is_infinite():
    results = [_result("a", 0, 0, 5.0), _result("a", 0, 1, 3.0), _result("a", 0, 2, None),
               _result("a", 1, 0, None), _result("a", 1, 1, None),
               _result("a", 2, 0, 9.0)]
    assert study.study_scores(results) == {("digits", "a"): [3.0, math.inf, 9.0]}
    assert study.median_score([3.0, math.inf, 9.0]) == 9.0
    assert study.median_score([math.inf, math.inf, 1.0]) == math.inf
    # A "reached" flag is what counts, not a stray time.
    assert study.trial_time({"reached": False, "time_to_target_sec": 1.0}) == math.inf


def test_ratios_against_the_baseline_of_the_same_workload():
    scores = {("digits", "nadamw_baseline"): 2.0, ("digits", "x"): 3.0,
              ("lm", "nadamw_baseline"): math.inf, ("lm", "x"): 4.0, ("other", "x"): 1.0}
    r = study.ratios(scores)
    assert r["digits", "x"] == 1.5 and r["digits", "nadamw_baseline"] == 1.0
    assert r["lm", "x"] is None and r["other", "x"] is None


def test_performance_profile():
    scores = {("w1", "a"): 1.0, ("w1", "b"): 2.0, ("w2", "a"): 3.0, ("w2", "b"): 1.0,
              ("w3", "a"): math.inf, ("w3", "b"): math.inf}
    rho = profiles.performance_profile(scores, [1.0, 1.9, 2.0, 3.0, 4.0])
    # a: best on w1 (1), 3x on w2; b: best on w2, 2x on w1; nobody solves w3.
    np.testing.assert_allclose(rho["a"], [1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(rho["b"], [1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3])
    # A workload one arm did not run is left out for all.
    partial = {**scores, ("w4", "a"): 1.0}
    assert np.allclose(profiles.performance_profile(partial, [4.0])["a"], [2 / 3])


def test_run_all_caches_each_trial_and_resumes(tmp_path):
    specs = study.plan_trials([BASE, REINIT], [DIGITS], num_trials=2, num_studies=1, seed=3)
    calls = []

    def fake(spec):
        calls.append(spec)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the study is interrupted at its third trial
        return {**_result(spec.arm.name, spec.study, spec.trial, 1.0 + len(calls)),
                "steps_to_target": 10, "wall_sec": 0.1}

    with pytest.raises(KeyboardInterrupt):
        study.run_all(specs, tmp_path, runner=fake, log=lambda line: None)
    assert len(list(tmp_path.glob("*.json"))) == 2 and not list(tmp_path.glob("*.tmp"))
    lines = []
    results = study.run_all(specs, tmp_path, runner=fake, log=lines.append)
    assert lines[0] == f"4 trials, 2 cached in {tmp_path}, 2 to run"
    assert len(calls) == 5 and len(results) == 4  # only the two missing trials ran again
    assert [r["arm"] for r in results] == [s.arm.name for s in specs]
    assert results[0]["time_to_target_sec"] == 2.0  # read back from the cache
    # cached() reads the same files and runs nothing; a trial not cached is counted.
    have, todo = study.cached(specs, tmp_path)
    assert todo == 0 and have == results and len(calls) == 5
    cycles = study.Arm("nadamw_cycles", "submissions/nadamw_cycles/submission.py")
    more = study.plan_trials([BASE, REINIT, cycles], [DIGITS], num_trials=2, num_studies=1,
                             seed=3)
    have, todo = study.cached(more, tmp_path)
    assert (len(have), todo) == (4, 2) and len(calls) == 5


def test_trial_key_follows_the_submission_files_and_the_fingerprint(tmp_path):
    import dataclasses

    (tmp_path / "submission.py").write_text("CONFIG = 1\n")
    (tmp_path / "tuning_search_space.json").write_text('{"lr": {"feasible_points": [1]}}')
    arm = study.Arm("mine", str(tmp_path / "submission.py"))
    (spec,) = study.plan_trials([arm], [DIGITS], num_trials=1, num_studies=1, seed=1)
    key = study.trial_key(spec)
    assert study.trial_key(spec) == key  # stable
    (tmp_path / "notes.md").write_text("docs do not count")
    assert study.trial_key(spec) == key
    (tmp_path / "submission.py").write_text("CONFIG = 2\n")
    assert study.trial_key(spec) != key
    (tmp_path / "submission.py").write_text("CONFIG = 1\n")
    assert study.trial_key(spec) == key
    other = dataclasses.replace(spec, arm=dataclasses.replace(arm, fingerprint="alpha=0.5"))
    assert study.trial_key(other) != key
    # A path inside the repository is keyed relative to it: the same key in any checkout.
    (shipped,) = study.plan_trials([BASE], [DIGITS], num_trials=1, num_studies=1, seed=1)
    absolute = dataclasses.replace(shipped, arm=dataclasses.replace(
        BASE, submission=str(ROOT / BASE.submission)))
    assert study.trial_key(absolute) == study.trial_key(shipped)
    reworded = dataclasses.replace(shipped, workload=dataclasses.replace(
        DIGITS, procedure="set another way"))
    assert study.trial_key(reworded) == study.trial_key(shipped)
    longer = dataclasses.replace(shipped, workload=dataclasses.replace(DIGITS, max_steps=9))
    assert study.trial_key(longer) != study.trial_key(shipped)


def test_report_only_runs_nothing_and_names_the_unfinished_workloads(tmp_path, capsys):
    efficacy = _load("efficacy")
    specs = study.plan_trials([BASE], [DIGITS], num_trials=1, num_studies=1, seed=20261202)
    assert efficacy.main(["--quick", "--report_only", f"--out_dir={tmp_path}"]) == 0
    text = (tmp_path / "results.md").read_text()
    assert "In progress: 0 of 2 trials cached; tables when all have run." in text
    assert "Performance profile" not in text and not list(tmp_path.glob("*.png"))
    assert not (tmp_path / "cache" / f"{study.trial_key(specs[0])}.json").exists()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        efficacy.main(["--quick", "--workloads", "stdlib_lm", f"--out_dir={tmp_path}"])
    assert "--workloads: ['stdlib_lm'] not in preset quick (its workloads: ['digits'])" in (
        capsys.readouterr().err)
    with pytest.raises(SystemExit):  # a misspelt ablation stops it before any trial runs
        efficacy.main(["--quick", "--ablations", "reinit:first_0.3", f"--out_dir={tmp_path}"])
    assert "--ablations: unknown ['reinit:first_0.3']" in capsys.readouterr().err
    assert not list((tmp_path / "cache").glob("*.json"))


@pytest.mark.benchmark  # ``pytest -m "not benchmark"`` skips it
def test_quick_mode_runs_and_writes_tables_and_pictures(tmp_path):
    import os
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("JAX_PLATFORMS", "cpu")
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "efficacy.py"), "--quick",
         f"--out_dir={tmp_path}"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "mode quick" in out.splitlines()[1]
    assert "2 trials, 0 cached" in out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines()
            if line.startswith("| nadamw_")}
    assert set(rows) == {"nadamw_baseline", "nadamw_reinit"}
    assert rows["nadamw_baseline"].split("|")[4].strip() == "1.00"  # its own ratio
    for name in ("results.md", "curves_digits.png", "profile.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2


ablations = _load("_ablations")


def test_each_ablation_changes_only_what_it_names(tmp_path):
    import dataclasses

    base = ablations.base_config("nadamw_reinit")
    for name, (submission, _, _) in ablations.ABLATIONS.items():
        changed = ablations.config(name)
        original = ablations.base_config(submission)
        assert changed.name == name
        diff = {f.name for f in dataclasses.fields(original)
                if getattr(original, f.name) != getattr(changed, f.name)}
        assert diff <= {"name", "reinit", "schedule"} and len(diff) == 2, (name, diff)
    first = ablations.config("reinit:first_0.5").schedule.cycle_fractions
    assert first[0] == 0.5 and sum(first) == pytest.approx(1.0)
    ratio = base.schedule.cycle_fractions[1] / base.schedule.cycle_fractions[2]
    assert first[1] / first[2] == pytest.approx(ratio)  # the rest keep their proportions
    assert ablations.config("reinit:plateau_off").reinit.plateau is None
    assert ablations.config("reinit:resets_off").reinit.params.mode == "keep"
    assert ablations.config("reinit:moments_zero").reinit.optimizer.mode == "zero"
    with pytest.raises(ValueError, match=r"ablation must be one of .*got 'nope'"):
        ablations.config("nope")
    submission, space = ablations.write_arm("reinit:plateau_off", tmp_path)
    text = pathlib.Path(submission).read_text()
    assert "_ablations.config('reinit:plateau_off')" in text
    compile(text, submission, "exec")
    assert pathlib.Path(space).read_text() == (
        ROOT / "submissions" / "nadamw_reinit" / "tuning_search_space.json").read_text()


def test_a_paired_plan_runs_every_arm_on_the_same_points_with_the_same_seeds():
    specs = study.plan_trials([BASE, REINIT], [DIGITS], num_trials=5, num_studies=2, seed=7,
                              points=[3, 1])
    assert len(specs) == 2 * 2 * 2  # studies × points × arms
    for arm in ("nadamw_baseline", "nadamw_reinit"):
        mine = [(s.study, s.trial, s.point_index, s.rng_seed) for s in specs
                if s.arm.name == arm]
        assert [m[:3] for m in mine] == [(0, 0, 3), (0, 1, 1), (1, 0, 3), (1, 1, 1)]
        assert {s.num_points for s in specs} == {10}
    by_arm = {a: [s.rng_seed for s in specs if s.arm.name == a]
              for a in ("nadamw_baseline", "nadamw_reinit")}
    assert by_arm["nadamw_baseline"] == by_arm["nadamw_reinit"]
    assert len(set(by_arm["nadamw_baseline"])) == 4  # a new seed per study and point
    # The unpaired plan's seeds for the same (study, trial): a cached trial is reused.
    unpaired = study.plan_trials([BASE], [DIGITS], num_trials=5, num_studies=2, seed=7)
    assert unpaired[0].rng_seed == specs[0].rng_seed
    for bad in ([], [10], [-1], [2, 2]):
        with pytest.raises(ValueError, match=r"points must be distinct indices in \[0, 10\)"):
            study.plan_trials([BASE], [DIGITS], num_trials=5, num_studies=2, seed=7,
                              points=bad)


def test_paired_table_gives_each_arm_its_time_or_final_metric_per_point(capsys, tmp_path):
    efficacy = _load("efficacy")

    def row(arm, point, t, steps, final):
        return {"arm": arm, "workload": "lm", "study": 0, "trial": 0, "point_index": point,
                "reached": t is not None, "time_to_target_sec": t, "steps_to_target": steps,
                "final_metric": final, "hparams": {"learning_rate": 0.00232 * (point + 1)}}

    results = [row("nadamw_baseline", 1, 311.26, 1400, 1.445),
               row("nadamw_baseline", 3, None, None, 1.5474),
               row("reinit:plateau_off", 1, None, None, 1.46), row("other", 1, 5.0, 20, 0.1)]
    table = efficacy.paired_table([*results, {**results[0], "workload": "digits"}], "lm",
                                  [1, 3])
    assert table[0] == "| arm | point 1 (lr 0.0046) | point 3 (lr 0.0093) |"
    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in table[2:]}
    assert [c.strip() for c in rows["nadamw_baseline"]] == [
        "311.3 s (1400 steps)", "∞ (final 1.547)"]
    assert [c.strip() for c in rows["reinit:plateau_off"]] == ["∞ (final 1.460)", "—"]
    with pytest.raises(SystemExit):
        efficacy.main(["--quick", "--ablation_points", "0", f"--out_dir={tmp_path}"])
    assert "--ablation_points needs --ablations" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # quick: K=1, one study: only point 0 exists
        efficacy.main(["--quick", "--ablations", "reinit:plateau_off", "--ablation_points",
                       "0", "1", f"--out_dir={tmp_path}"])
    assert ("--ablation_points on digits: points must be distinct indices in [0, 1)"
            in capsys.readouterr().err)
    assert not (tmp_path / "cache").exists()


cost = _load("_cost")


def _reached(arm, study_, steps, t, workload="lm"):
    return {"arm": arm, "workload": workload, "study": study_, "trial": 0, "reached": steps
            is not None, "steps_to_target": steps, "time_to_target_sec": t,
            "final_metric": 1.0, "lower_is_better": True, "train_step_compilations": 1,
            "curve": [[1, 0.5, 2.0, 2.0], [20, 1.0, 1.0, 1.0]], "target_value": 1.5,
            "target_metric": "validation/loss"}


def test_time_on_the_cost_curve_prices_the_steps_to_target_at_the_arms_cost():
    curve = {"steps": [1, 100, 200], "sec": [8.0, 30.0, 50.0]}
    assert cost.time_on_curve(_reached("a", 0, 200, 999.0), curve) == 50.0
    assert cost.time_on_curve(_reached("a", 0, 150, 1.0), curve) == 40.0  # between evals
    assert cost.time_on_curve(_reached("a", 0, None, None), curve) == math.inf
    with pytest.raises(ValueError, match="steps_to_target 300 of a on lm lies past its cost "
                       "curve's last step 200"):
        cost.time_on_curve(_reached("a", 0, 300, 1.0), curve)
    curves = {"lm/base": curve}
    assert cost.curve_of(curves, "lm", "abl", {"abl": "base"}) is curve  # its base's
    assert cost.curve_of(curves, "lm", "abl") is None
    assert cost.curve_of(curves, "digits", "base", {"abl": "base"}) is None


def test_scores_use_the_cost_curves_where_every_arm_has_one(tmp_path):
    efficacy = _load("efficacy")
    # Measured in two sessions: the baseline's study 1 ran on a slower machine.
    lm = "stdlib_lm"
    results = [_reached("nadamw_baseline", 0, 200, 100.0, lm),
               _reached("nadamw_baseline", 1, 200, 140.0, lm),
               _reached("nadamw_baseline", 2, None, None, lm),
               _reached("nadamw_cycles", 0, 100, 70.0, lm),
               _reached("nadamw_cycles", 1, 200, 100.0, lm),
               _reached("nadamw_cycles", 2, 100, 70.0, lm),
               _reached("nadamw_baseline", 0, 20, 2.0, workload="digits")]
    curves = {"stdlib_lm/nadamw_baseline": {"steps": [1, 100, 200], "sec": [1.0, 50.0, 100.0],
                                     "finished_utc": "2026-12-02 17:00"},
              "stdlib_lm/nadamw_cycles": {"steps": [1, 100, 200], "sec": [1.0, 55.0, 110.0],
                                   "finished_utc": "2026-12-02 17:30"}}
    times = efficacy.timing(results, curves)
    assert set(times) == {lm}  # digits has no curves
    table = efficacy.score_table(results, lm, times[lm])
    assert "measured median [s]" in table[0] and "on the cost curves" in table[0]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:8]]
            for line in table[2:]}
    assert rows["nadamw_baseline"][:5] == ["100.0, 100.0, ∞", "100.0", "1.00", "140.0", "1.00"]
    assert rows["nadamw_cycles"][:5] == ["55.0, 110.0, 55.0", "55.0", "0.55", "70.0", "0.50"]
    plain = efficacy.score_table(results, lm)
    assert "measured median" not in plain[0]
    lines = efficacy.write_outputs(results, tmp_path, preset="full", header=["h"],
                                   plan={"digits": (1, 1), lm: (1, 3)}, curves=curves)
    notes = [line for line in lines if "cost curve (its submission time" in line]
    assert len(notes) == 1 and "2026-12-02 17:00-2026-12-02 17:30 UTC" in notes[0]
    assert lines.index(notes[0]) > lines.index(f"### {lm}: K=1 trials × S=3 studies")
    assert "Times on the cost curves on stdlib_lm; measured elsewhere." in lines
    assert (tmp_path / f"curves_{lm}.png").stat().st_size > 1000


def test_measure_runs_the_arm_at_its_defaults_past_the_target():
    seen = {}

    import types

    def run(flags):
        seen["flags"] = flags
        return [types.SimpleNamespace(eval_results=[(1, {"score": 2.5}), (40, {"score": 30.0})])]

    curve = cost.measure("nadamw_baseline", pathlib.Path("s.py"), LM, rng_seed=5, run=run)
    assert curve["steps"] == [1, 40] and curve["sec"] == [2.5, 30.0]
    assert curve["arm"] == "nadamw_baseline" and curve["workload"] == "stdlib_lm"
    for flag in ("--tuning_ruleset=self", "--continue_past_target", "--rng_seed=5",
                 f"--max_global_steps={LM.max_steps}", f"--eval_every_steps={LM.eval_every}"):
        assert flag in seen["flags"]


def test_cost_curves_are_kept_one_file_per_arm(tmp_path):
    folder = tmp_path / "curves"
    assert cost.load(folder) == {}
    for workload, arm, sec in (("lm", "a", 1.0), ("lm", "b:x", 2.0), ("digits", "a", 3.0),
                               ("lm", "a", 4.0)):  # the last one replaces the first
        cost.save(folder, {"workload": workload, "arm": arm, "steps": [1], "sec": [sec]})
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.json")) == [
        "digits/a.json", "lm/a.json", "lm/b_x.json"]
    assert {k: c["sec"] for k, c in cost.load(folder).items()} == {
        "lm/a": [4.0], "lm/b:x": [2.0], "digits/a": [3.0]}
