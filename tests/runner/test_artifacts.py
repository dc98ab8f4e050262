"""Submission artefacts (``run_protocol``'s hook): the runner knows no submission's files.

A tiny submission written here delegates to ``nadamw_baseline`` and writes its own
``notes.csv`` (one row per update, step column ``step``) and ``extra_<k>.txt``
files, declared through ``run_artifacts()`` with the inner submission's; a second
one writes the same files without declaring any. The runner must print the notes through their ``message``, truncate
them on resume, and count them as the run's own for ``--overwrite``.
"""

import json
import os
import pathlib
import subprocess
import sys
import types

import pytest

from algoperf_reinit.run_protocol import RunArtifact
from algoperf_reinit.runner import load_submission, read_csv
from algoperf_reinit.runner.artifacts import (
    check_artifacts,
    load_artifacts,
    report_new_rows,
    seen_rows,
    truncate_artifacts,
)
from algoperf_reinit.runner.experiment import check_run_dir
from tests.runner.conftest import delegating_submission, submission

WRITE_NOTES = """\
    run_dir = os.environ.get(RUN_DIR_ENV)
    if run_dir:
        path = pathlib.Path(run_dir) / "notes.csv"
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["step", "text"])
            writer.writerow([global_step, "note"])
        (pathlib.Path(run_dir) / "extra_1.txt").write_text("x")
    if str(global_step) == os.environ.get("TINY_INTERRUPT_AT"):
        raise KeyboardInterrupt  # as if the process were killed after this step's row"""

HOOK = '''

def _message(row, earlier):
    return f"note of step {row['step']}" if int(row["step"]) % 5 == 4 else None


def run_artifacts():  # the inner submission's files and ours
    return [*_inner.run_artifacts(),
            RunArtifact("notes.csv", step_column="step", message=_message),
            RunArtifact("extra_*.txt")]
'''
NO_HOOK = "\ndel run_artifacts  # writes the same files, declares none\n"


def write(tmp_path: pathlib.Path, name: str, hook: bool) -> pathlib.Path:
    sub = tmp_path / name / "submission.py"
    sub.parent.mkdir()
    sub.write_text(delegating_submission(submission("nadamw_baseline"), WRITE_NOTES)
                   + (HOOK if hook else NO_HOOK))
    return sub


ARGS = ("--tuning_ruleset=self", "--eval_every_steps=5")


def test_the_runner_imports_nothing_of_our_submissions():
    code = ("import sys, algoperf_reinit.runner, algoperf_reinit.runner.run; "
            "print(sorted(m for m in sys.modules if m.startswith('algoperf_reinit.submission')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert out.stdout.strip() == "[]"
    runner = pathlib.Path(__file__).resolve().parents[2] / "algoperf_reinit" / "runner"
    for path in runner.glob("*.py"):
        text = path.read_text()
        assert "algoperf_reinit.submission" not in text, path
        assert "events.csv" not in text and "lr_schedule.png" not in text, path


def test_loading_gets_the_artifacts_or_none():
    ours = load_submission(submission("nadamw_reinit"))
    names = [a.name for a in ours.artifacts]
    assert "events.csv" in names and "schedule_history.json" in names
    events = next(a for a in ours.artifacts if a.name == "events.csv")
    assert events.step_column == "global_step" and callable(events.message)
    assert load_artifacts(types.ModuleType("no_hook"), "x") == ()


def test_messages_and_overwrite_of_a_declared_artifact(run_cli, tmp_path):
    sub = write(tmp_path, "tiny", hook=True)
    code, out, err = run_cli(f"--submission_path={sub}", "--max_global_steps=10", *ARGS)
    assert code == 0, err
    trial = run_cli.study_dir / "digits_jax" / "trial_1"
    assert [r["step"] for r in read_csv(trial / "notes.csv")] == [str(s) for s in range(10)]
    assert "note of step 4" in out and "note of step 9" in out and "note of step 3" not in out
    assert out.index("note of step 4") < out.index("note of step 9")
    assert f"submission:    {trial / 'notes.csv'}" in out
    meta = json.loads((trial / "meta_data_0.json").read_text())
    assert meta["submission_artifacts"][-2:] == ["notes.csv", "extra_*.txt"]
    code, _, err = run_cli(f"--submission_path={sub}", "--max_global_steps=3", "--overwrite",
                           *ARGS)
    assert code == 0, err
    assert len(read_csv(trial / "notes.csv")) == 3


def test_resume_truncates_a_declared_step_csv(run_cli, tmp_path, monkeypatch):
    sub = write(tmp_path, "tiny", hook=True)
    args = (f"--submission_path={sub}", "--max_global_steps=20", *ARGS)
    monkeypatch.setenv("TINY_INTERRUPT_AT", "12")  # after the checkpoint at step 10
    assert run_cli(*args)[0] == 130
    trial = run_cli.study_dir / "digits_jax" / "trial_1"
    assert [r["step"] for r in read_csv(trial / "notes.csv")][-3:] == ["10", "11", "12"]
    monkeypatch.delenv("TINY_INTERRUPT_AT")
    code, out, err = run_cli(*args, "--resume_last_run")
    assert code == 0, err
    assert "from checkpoint_10.msgpack" in out
    assert [r["step"] for r in read_csv(trial / "notes.csv")] == [str(s) for s in range(20)]
    assert "note of step 14" in out and "note of step 9" not in out


def test_undeclared_files_are_not_the_runners_business(run_cli, tmp_path):
    plain = write(tmp_path, "plain", hook=False)
    assert load_submission(str(plain)).artifacts == ()
    code, out, err = run_cli(f"--submission_path={plain}", "--max_global_steps=5", *ARGS)
    assert code == 0, err
    assert "note of step" not in out and "submission:" not in out
    code, _, err = run_cli(f"--submission_path={plain}", "--max_global_steps=5",
                           "--overwrite", *ARGS)
    assert code == 2 and "refusing to delete" in err and "is not a file the runner" in err


def test_overwrite_accepts_artifacts_recorded_by_another_submission(run_cli, tmp_path):
    declared, plain = write(tmp_path, "tiny", hook=True), write(tmp_path, "plain", hook=False)
    assert run_cli(f"--submission_path={declared}", "--max_global_steps=5", *ARGS)[0] == 0
    code, _, err = run_cli(f"--submission_path={plain}", "--max_global_steps=5",
                           "--overwrite", *ARGS)
    assert code == 0, err


def test_overwrite_accepts_every_file_our_submissions_declare(tmp_path):
    trial = tmp_path / "digits_jax" / "trial_1"
    trial.mkdir(parents=True)
    (trial / "flags_0.json").write_text("{}")
    artifacts = load_submission(submission("nadamw_reinit")).artifacts
    for name in ("events.csv", "lr_schedule.png", "schedule_history.json"):
        (trial / name).write_text("")
    with pytest.raises(ValueError, match=r"schedule_history\.json' is not a file the runner"):
        check_run_dir(tmp_path / "digits_jax")
    check_run_dir(tmp_path / "digits_jax", [a.name for a in artifacts])


def _csv(path, rows):
    path.write_text("step,kind\n" + "".join(f"{s},{k}\n" for s, k in rows))


def test_truncate_and_report_follow_the_declaration(tmp_path):
    said = []
    artifacts = (RunArtifact("a_*.csv", step_column="step",
                             message=lambda row, earlier: None if earlier else row["kind"]),
                 RunArtifact("b.csv"))
    _csv(tmp_path / "a_1.csv", [(0, "x"), (5, "y"), (9, "z")])
    _csv(tmp_path / "b.csv", [(0, "x"), (9, "z")])
    assert truncate_artifacts(tmp_path, artifacts, 5) == 2  # only the one with step_column
    assert len(read_csv(tmp_path / "b.csv")) == 2
    seen = seen_rows(tmp_path, artifacts)
    assert dict(seen) == {str(tmp_path / "a_1.csv"): 1}
    _csv(tmp_path / "a_2.csv", [(6, "first"), (7, "second")])
    seen = report_new_rows(tmp_path, artifacts, seen, said.append)
    assert said == ["first"]  # a_1 has no new row; a_2's second row has earlier rows
    assert report_new_rows(tmp_path, artifacts, seen, said.append) == seen and said == ["first"]


@pytest.mark.parametrize(("declared", "error", "message"), [
    ("events.csv", TypeError, r"run_artifacts\(\) must be a sequence of RunArtifact"),
    (["events.csv"], TypeError, r"run_artifacts\(\)\[0\] must be an instance of RunArtifact"),
    ([RunArtifact(3)], TypeError, r"\[0\]\.name must be a file name \(str\), got 3 of type int"),
    ([RunArtifact("")], ValueError, r"\[0\]\.name must be a non-empty name relative"),
    ([RunArtifact("/tmp/x.csv")], ValueError, r"\[0\]\.name must be a non-empty name relative"),
    ([RunArtifact("../x.csv")], ValueError, "relative to the run directory"),
    ([RunArtifact("summary.json")], ValueError, "not one of the runner's"),
    ([RunArtifact("a.csv"), RunArtifact("a.csv")], ValueError, r"\[1\]\.name must be declared once"),
    ([RunArtifact("a.csv", step_column=1)], TypeError, r"step_column must be a column name"),
    ([RunArtifact("a.csv", step_column="")], ValueError, r"step_column must be a non-empty"),
    ([RunArtifact("a.csv", message="hi")], TypeError, r"\[0\]\.message must be a function"),
])
def test_a_bad_hook_result_is_a_clear_error(declared, error, message):
    with pytest.raises(error, match=message):
        check_artifacts(declared)


@pytest.mark.parametrize(("hook", "message"), [
    ("run_artifacts = ['notes.csv']", "run_artifacts must be a function, got ['notes.csv']"),
    ("def run_artifacts():\n    return [RunArtifact('/x')]",
     "run_artifacts()[0].name must be a non-empty name"),
    ("def run_artifacts():\n    return 'notes.csv'",
     "run_artifacts() must be a sequence of RunArtifact, got 'notes.csv' of type str"),
])
def test_a_bad_hook_fails_at_load_time_with_exit_2(run_cli, tmp_path, hook, message):
    sub = write(tmp_path, "bad", hook=False)
    sub.write_text(sub.read_text() + "\n" + hook + "\n")
    code, _, err = run_cli(f"--submission_path={sub}", *ARGS)
    assert code == 2 and message in err, err
    assert not (tmp_path / "exp").exists()
