"""resolve_hparams and HParams: every form of hyperparameters, defaults, validation."""

import collections
import dataclasses
import math
import types

import numpy as np
import pytest

from algoperf_reinit.submission import HParams, resolve_hparams

GIVEN = {"learning_rate": 3e-3, "warmup_factor": 0.1}


@dataclasses.dataclass
class AsDataclass:
    learning_rate: float = 3e-3
    warmup_factor: float = 0.1


class TestResolveHparams:
    def test_self_tuning_gets_the_defaults(self):
        defaults = HParams(learning_rate=1e-2)
        assert resolve_hparams(None, defaults) is defaults
        assert resolve_hparams(None) == HParams()

    @pytest.mark.parametrize(
        "form",
        [
            GIVEN,
            collections.namedtuple("Hyperparameters", list(GIVEN))(**GIVEN),  # AlgoPerf's
            types.MappingProxyType(GIVEN),
            types.SimpleNamespace(**GIVEN),
            AsDataclass(),
        ],
        ids=["dict", "namedtuple", "mapping", "namespace", "dataclass"],
    )
    def test_every_form_reads_the_same(self, form):
        hp = resolve_hparams(form)
        assert hp == dataclasses.replace(HParams(), **GIVEN)

    def test_names_not_given_keep_their_defaults_and_unknown_names_are_ignored(self):
        defaults = HParams(beta2=0.99, grad_clip=1.0)
        hp = resolve_hparams({"learning_rate": 5e-3, "num_cycles": 3}, defaults)
        assert hp == dataclasses.replace(defaults, learning_rate=5e-3)

    def test_values_are_validated(self):
        with pytest.raises(ValueError, match=r"hyperparameter beta2 must be in \[0, 1\), got 1.0"):
            resolve_hparams({"beta2": 1.0})

    def test_other_kinds_are_a_type_error(self):
        with pytest.raises(TypeError, match=r"hyperparameters must be a namedtuple .*got \[0.1\]"):
            resolve_hparams([0.1])


class TestHParams:
    def test_numbers_become_floats_and_optional_ones_may_be_none(self):
        hp = HParams(learning_rate=1, budget_fraction=np.float32(0.5), dropout_rate=None)
        assert type(hp.learning_rate) is float and type(hp.budget_fraction) is float
        assert hp.dropout_rate is None and hp.grad_clip is None
        assert HParams(dropout_rate=0.1, grad_clip=0).grad_clip == 0.0

    @pytest.mark.parametrize(
        "kwargs, error, match",
        [
            (dict(learning_rate=0.0), ValueError, r"hyperparameter learning_rate must be > 0, got 0.0"),
            (dict(beta2=1.0), ValueError, r"hyperparameter beta2 must be in \[0, 1\), got 1.0"),
            (dict(one_minus_beta1=-0.1), ValueError, r"one_minus_beta1 must be in \[0, 1\)"),
            (dict(warmup_factor=1.5), ValueError, r"warmup_factor must be in \[0, 1\)"),
            (dict(label_smoothing=1.0), ValueError, r"label_smoothing must be in \[0, 1\)"),
            (dict(weight_decay=-1e-4), ValueError, r"weight_decay must be >= 0, got -0.0001"),
            (dict(budget_fraction=0.0), ValueError, r"budget_fraction must be in \(0, 4\], got 0.0"),
            (dict(budget_fraction=4.5), ValueError, r"budget_fraction must be in \(0, 4\]"),
            (dict(grad_clip=math.inf), ValueError, r"hyperparameter grad_clip must be finite"),
            (dict(dropout_rate=math.nan), ValueError, r"dropout_rate must be a number, not NaN"),
            (dict(learning_rate="3e-3"), TypeError,
             r"hyperparameter learning_rate must be a real number, got '3e-3' of type str"),
            (dict(weight_decay=True), TypeError, r"weight_decay must be a real number, got True"),
            (dict(beta2=None), TypeError, r"beta2 must be a real number, got None"),
        ],
    )
    def test_bad_values_name_the_hyperparameter_value_and_rule(self, kwargs, error, match):
        with pytest.raises(error, match=match):
            HParams(**kwargs)
