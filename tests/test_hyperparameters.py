"""One reader for hyperparameters in every form they arrive in."""

import collections
import dataclasses
import types

import pytest

from algoperf_reinit._hyperparameters import as_mapping, hyperparameter

Hp = collections.namedtuple("Hyperparameters", ["learning_rate", "warmup_factor"])


@dataclasses.dataclass
class HpData:
    learning_rate: float = 0.1
    warmup_factor: float = 0.05


@pytest.mark.parametrize(
    "given",
    [Hp(0.1, 0.05), {"learning_rate": 0.1, "warmup_factor": 0.05}, HpData(),
     types.SimpleNamespace(learning_rate=0.1, warmup_factor=0.05)],
    ids=["namedtuple", "dict", "dataclass", "namespace"],
)
def test_every_form_reads_the_same(given):
    assert as_mapping(given) == {"learning_rate": 0.1, "warmup_factor": 0.05}
    assert hyperparameter(given, "warmup_factor") == 0.05


def test_none_is_empty_and_the_result_is_a_copy():
    assert as_mapping(None) == {}
    given = {"learning_rate": 0.1}
    as_mapping(given)["learning_rate"] = 1.0
    assert given == {"learning_rate": 0.1}


def test_a_missing_name_is_a_value_error_listing_what_was_given():
    with pytest.raises(ValueError, match=r"must provide 'beta2', got \['learning_rate'\]"):
        hyperparameter({"learning_rate": 0.1}, "beta2")


@pytest.mark.parametrize("given", [[("learning_rate", 0.1)], 0.1, {1: 0.1}])
def test_other_forms_are_type_errors(given):
    with pytest.raises(TypeError):
        as_mapping(given)
