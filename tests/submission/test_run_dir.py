"""Where a submission writes its files: our runner's variable, the harness's flags, the cwd."""

import pathlib

import pytest

from algoperf_reinit.run_protocol import RUN_DIR_ENV
from algoperf_reinit.submission import harness_run_dir, resolve_run_dir


class Flags:
    """Stands in for absl's FlagValues: ``in``, ``is_parsed()`` and attributes."""

    def __init__(self, parsed=True, **values):
        self._parsed, self._values = parsed, values

    def __contains__(self, name):
        return name in self._values

    def is_parsed(self):
        return self._parsed

    def __getattr__(self, name):
        return self.__dict__["_values"][name]


class Digits:
    pass


def test_the_runner_variable_wins(tmp_path):
    run_dir = harness_run_dir(Flags(experiment_dir="exp"), {RUN_DIR_ENV: str(tmp_path)})
    assert run_dir(Digits(), {"learning_rate": 0.1}, 0) == tmp_path


def test_harness_flags_give_a_folder_per_workload_and_trial():
    flags = Flags(workload="mnist", experiment_dir="exp", experiment_name="study")
    run_dir = harness_run_dir(flags, {})
    first = run_dir(Digits(), {"learning_rate": 0.1}, [0, 1])
    assert first.parent == pathlib.Path("exp/study/mnist_jax/algoperf_reinit")
    assert first.name.startswith("trial_")
    assert run_dir(Digits(), {"learning_rate": 0.2}, [0, 1]) != first  # another trial
    assert run_dir(Digits(), {"learning_rate": 0.1}, [0, 2]) != first  # another seed
    assert first == resolve_run_dir("mnist", {"learning_rate": 0.1}, [0, 1],
                                    experiment_dir="exp", experiment_name="study")


@pytest.mark.parametrize("flags", [None, Flags(parsed=False, experiment_dir="exp"), Flags()],
                         ids=["no-flags", "unparsed", "undefined"])
def test_without_flags_the_working_directory_is_used(flags):
    out = harness_run_dir(flags, {})(Digits(), None, 0)
    assert out.parent == pathlib.Path(".") / "algoperf_reinit_runs" / "Digits"


def test_flags_are_read_at_call_time_not_when_built():
    flags = Flags(parsed=False, experiment_dir="exp")
    run_dir = harness_run_dir(flags, {})
    flags._parsed = True  # the harness parses its flags after importing the submission
    assert run_dir(Digits(), None, 0).parts[:3] == ("exp", "Digits_jax", "algoperf_reinit")


def test_namedtuple_and_dict_hyperparameters_give_the_same_trial():
    import collections

    hp = collections.namedtuple("Hyperparameters", ["learning_rate"])(0.1)
    assert resolve_run_dir("w", hp, 0) == resolve_run_dir("w", {"learning_rate": 0.1}, 0)
