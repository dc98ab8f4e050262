"""Shared helpers of the runner tests."""

import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SUBMISSIONS = ROOT / "submissions"


def submission(name: str) -> str:
    return str(SUBMISSIONS / name / "submission.py")


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
