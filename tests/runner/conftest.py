"""Shared helpers of the runner tests."""

import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SUBMISSIONS = ROOT / "submissions"


def submission(name: str) -> str:
    return str(SUBMISSIONS / name / "submission.py")


# A submission file that delegates to another one (``{path}``), runs ``{before}``
# (indented code) before each update and forwards the inner file's artefact hook
# (a wrapper must, or the runner does not know the inner submission's files).
DELEGATING = '''
import csv, importlib.util, os, pathlib, time
from algoperf_reinit.run_protocol import RUN_DIR_ENV, RunArtifact

_spec = importlib.util.spec_from_file_location("_inner_submission", {path!r})
_inner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_inner)
get_batch_size = _inner.get_batch_size
init_optimizer_state = _inner.init_optimizer_state
prepare_for_eval = _inner.prepare_for_eval
data_selection = _inner.data_selection
run_artifacts = _inner.run_artifacts


def update_params(workload, current_param_container, current_params_types, model_state,
                  hyperparameters, batch, loss_type, optimizer_state, eval_results,
                  global_step, rng, train_state=None):
{before}
    return _inner.update_params(
        workload=workload, current_param_container=current_param_container,
        current_params_types=current_params_types, model_state=model_state,
        hyperparameters=hyperparameters, batch=batch, loss_type=loss_type,
        optimizer_state=optimizer_state, eval_results=eval_results,
        global_step=global_step, rng=rng, train_state=train_state)
'''


def delegating_submission(inner: str, before: str = "    pass") -> str:
    """The source of a submission file delegating to ``inner`` (see :data:`DELEGATING`)."""
    return DELEGATING.format(path=inner, before=before)


def strict_json(path: pathlib.Path):
    def reject(name):
        raise ValueError(f"non-finite {name} in {path}")

    return json.loads(path.read_text(), parse_constant=reject)


@pytest.fixture
def run_cli(tmp_path, capsys):
    """Runs the runner in-process with --experiment_dir under tmp_path; returns (code, out, err)."""
    from algoperf_reinit.runner import main

    def run(*args: str, experiment_dir: pathlib.Path | None = None):
        argv = [f"--experiment_dir={experiment_dir or tmp_path / 'exp'}",
                "--experiment_name=study", "--progress=lines", *args]
        code = main(argv)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    run.study_dir = tmp_path / "exp" / "study"

    return run
