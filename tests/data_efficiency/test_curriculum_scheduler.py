"""CurriculumScheduler against the spec (§2.1-2.3) and its recorded runs."""

import copy
import json
import math
import re
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algoperf_reinit.data_efficiency import (
    CurriculumMetricConfig,
    CurriculumScheduler,
    CurriculumState,
)
from tests.data_efficiency.test_difficulty import spec_fixed_discrete, spec_fixed_root

METRIC = re.escape("data_efficiency.data_sampling.curriculum_learning.curriculum_metrics.<metric>")


def linear(lo=16, hi=64, total=10, q=8, **extra):
    return {"min_difficulty": lo, "max_difficulty": hi, "schedule_type": "fixed_linear",
            "schedule_config": {"total_curriculum_step": total, "difficulty_step": q}, **extra}


def root(lo=64, hi=2048, total=1000, q=8, degree=3):
    return {"min_difficulty": lo, "max_difficulty": hi, "schedule_type": "fixed_root",
            "schedule_config": {"total_curriculum_step": total, "difficulty_step": q,
                                "root_degree": degree}}


def discrete(levels=(1, 2, 3), steps=(5, 10), lo=1, hi=3):
    return {"min_difficulty": lo, "max_difficulty": hi, "schedule_type": "fixed_discrete",
            "schedule_config": {"difficulty": list(levels), "max_step": list(steps)}}


def custom(lo=0, hi=10):
    return {"min_difficulty": lo, "max_difficulty": hi, "schedule_type": "custom"}


class TestGetDifficulty:
    @pytest.mark.parametrize("legacy", [False, True])
    def test_fixed_linear(self, legacy):
        s = CurriculumScheduler(linear(8, 100, 50, 16), legacy_rounding=legacy)
        for step in range(120):
            assert s.get_difficulty(step) == spec_fixed_root(step, 8, 100, 50, 16, 1, not legacy)

    def test_fixed_root(self):
        s = CurriculumScheduler(root())
        for step in range(0, 1200, 7):
            assert s.get_difficulty(step) == spec_fixed_root(step, 64, 2048, 1000, 8, 3)
        assert [s.get_difficulty(0), s.get_difficulty(1)] == [64, 256]  # spec's example

    def test_fixed_discrete(self):
        s = CurriculumScheduler(discrete())
        assert [s.get_difficulty(t) for t in range(15)] == [
            spec_fixed_discrete(t, [1, 2, 3], [5, 10]) for t in range(15)]

    def test_get_difficulty_is_pure(self):
        s = CurriculumScheduler(linear())
        s.get_difficulty(10)
        assert s.state == CurriculumState(16)

    def test_legacy_rounding_from_the_config_or_the_argument(self):
        cfg = linear(8, 64, 10, 16, legacy_rounding=True)
        assert CurriculumScheduler(cfg).get_difficulty(0) == 0
        assert CurriculumScheduler(cfg, legacy_rounding=False).get_difficulty(0) == 16
        assert CurriculumScheduler(linear(8, 64, 10, 16)).get_difficulty(0) == 16

    def test_object_and_dict_agree(self):
        obj = CurriculumMetricConfig(
            min_difficulty=16, max_difficulty=64, schedule_type="fixed_linear",
            schedule_config={"total_curriculum_step": 10, "difficulty_step": 8})
        a, b = CurriculumScheduler(obj), CurriculumScheduler(linear())
        assert a.config == b.config
        assert [a.get_difficulty(t) for t in range(12)] == [b.get_difficulty(t) for t in range(12)]


class TestUpdateDifficulty:
    def test_sampler_offset_starts_at_step_1(self):
        # The sampler's first global batch is curriculum step 1 (spec §2.3, recorded 16).
        s = CurriculumScheduler(linear())
        assert s.current_difficulty == 16  # min before any update
        got = [s.update_difficulty(step) for step in range(1, 12)]
        assert got == [spec_fixed_root(t, 16, 64, 10, 8) for t in range(1, 12)]

    def test_legacy_engine_offset_is_global_steps_plus_one(self):
        # Spec §5 (recorded, 0.19.5): legacy CL 8 -> 64 / T 6 / q 8 gives
        # curriculum_seqlen 16, 24, 32, 40, 48, 64 for global steps 0..5.
        s = CurriculumScheduler(linear(8, 64, 6, 8), legacy_rounding=True)
        assert [s.update_difficulty(g + 1) for g in range(6)] == [16, 24, 32, 40, 48, 64]

    def test_sticky_at_max_even_if_the_schedule_goes_on(self):
        # Spec §2.2 (recorded): discrete [1,2,3]/[5,10] with max_difficulty 2 freezes at 2.
        s = CurriculumScheduler(discrete(hi=2))
        got = [s.update_difficulty(t) for t in range(15)]
        assert got == [1] * 6 + [2] * 9
        assert s.get_difficulty(14) == 3  # the pure schedule does reach 3

    def test_not_monotone_until_max_then_frozen(self):
        s = CurriculumScheduler(custom(0, 10))
        values = iter([4, 7, 3, 10, 2, 5])
        s.set_custom_get_difficulty(lambda step: next(values))
        assert [s.update_difficulty(t) for t in range(6)] == [4, 7, 3, 10, 10, 10]

    def test_frozen_probe_does_not_call_the_schedule(self):
        calls = []
        s = CurriculumScheduler(custom(0, 10))
        s.set_custom_get_difficulty(lambda step: calls.append(step) or 12)
        for t in range(5):
            assert s.update_difficulty(t) == 12
        assert calls == [0]


class TestCustom:
    def test_receives_the_step(self):
        s = CurriculumScheduler(custom(0, 1000))
        s.set_custom_get_difficulty(lambda step: 3 * step)
        assert [s.update_difficulty(t) for t in (1, 2, 5)] == [3, 6, 15]

    @pytest.mark.parametrize("method", ["get_difficulty", "update_difficulty"])
    def test_without_a_function_is_a_clear_error(self, method):
        s = CurriculumScheduler(custom())
        with pytest.raises(ValueError, match=(
                rf"^{METRIC} custom difficulty function must be installed for schedule_type "
                r"'custom', got <missing>; call set_custom_get_difficulty\(fn\) first$")):
            getattr(s, method)(1)

    def test_min_equal_max_never_calls_it(self):
        # DeepSpeed never calls the function when min >= max: neither do we.
        s = CurriculumScheduler(custom(5, 5))
        assert [s.update_difficulty(t) for t in range(3)] == [5, 5, 5]

    def test_function_must_return_a_number(self):
        s = CurriculumScheduler(custom())
        s.set_custom_get_difficulty(lambda step: "hard")
        with pytest.raises(TypeError, match=r"custom difficulty at step 2 must be a real number, "
                                            r"got 'hard' of type str"):
            s.update_difficulty(2)

    def test_numpy_results_become_python_numbers(self):
        import numpy as np

        s = CurriculumScheduler(custom(0, 100))
        s.set_custom_get_difficulty(lambda step: np.int64(step * 2))
        assert type(s.update_difficulty(3)) is int
        json.dumps(s.state_dict())

    def test_not_callable(self):
        with pytest.raises(TypeError, match="schedule_function must be a callable"):
            CurriculumScheduler(custom()).set_custom_get_difficulty(3)

    def test_only_for_custom_schedules(self):
        with pytest.raises(ValueError, match=(rf"{METRIC}.schedule_type must be 'custom' to take "
                                              r"a custom difficulty function, got 'fixed_linear'")):
            CurriculumScheduler(linear()).set_custom_get_difficulty(lambda s: 1)


class TestState:
    def test_state_dict_is_json_and_resumes(self):
        a = CurriculumScheduler(linear(8, 100, 50, 8))
        for t in range(1, 20):
            a.update_difficulty(t)
        saved = json.loads(json.dumps(a.state_dict()))
        assert saved == {"current_difficulty": spec_fixed_root(19, 8, 100, 50, 8),
                         "min_difficulty": 8, "max_difficulty": 100,
                         "schedule_type": "fixed_linear"}
        b = CurriculumScheduler(linear(8, 100, 50, 8))
        b.load_state_dict(saved)
        assert b.state == a.state
        assert [b.update_difficulty(t) for t in range(20, 60)] == [
            a.update_difficulty(t) for t in range(20, 60)]

    def test_frozen_state_survives_a_resume(self):
        a = CurriculumScheduler(discrete(hi=2))
        for t in range(12):
            a.update_difficulty(t)
        b = CurriculumScheduler(discrete(hi=2))
        b.load_state_dict(a.state_dict())
        assert b.update_difficulty(20) == 2  # still frozen; a fresh one would give 3

    def test_checkpoint_of_another_configuration(self):
        a = CurriculumScheduler(linear(hi=64))
        with pytest.raises(ValueError, match=(r"state_dict.max_difficulty must be 128 as in this "
                                              r"configuration, got 64; the checkpoint belongs")):
            CurriculumScheduler(linear(hi=128)).load_state_dict(a.state_dict())

    def test_missing_current_difficulty(self):
        with pytest.raises(ValueError, match=r"state_dict\.current_difficulty must be given"):
            CurriculumScheduler(linear()).load_state_dict({})


class TestConstruction:
    def test_input_is_not_mutated(self):
        cfg = linear(extra_key=1)
        before = copy.deepcopy(cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            CurriculumScheduler(cfg)
        assert cfg == before

    def test_difficulty_type_and_clustering_type_are_optional_here(self):
        CurriculumScheduler(linear())  # the legacy path gives neither

    @pytest.mark.parametrize(("key", "match"), [
        ("min_difficulty", rf"^{METRIC}.min_difficulty must be given for every curriculum metric, got <missing>$"),
        ("max_difficulty", rf"^{METRIC}.max_difficulty must be given"),
        ("schedule_type", rf"^{METRIC}.schedule_type must be given"),
    ])
    def test_missing_required_keys(self, key, match):
        cfg = linear()
        del cfg[key]
        with pytest.raises(ValueError, match=match):
            CurriculumScheduler(cfg)

    def test_unknown_schedule_type(self):
        cfg = linear()
        cfg["schedule_type"] = "fixed_lienar"
        with pytest.raises(ValueError, match=(rf"{METRIC}.schedule_type must be one of 'fixed_linear', "
                                              r".*got 'fixed_lienar'; did you mean 'fixed_linear'\?")):
            CurriculumScheduler(cfg)

    def test_not_a_config(self):
        with pytest.raises(TypeError, match="config must be an instance of CurriculumMetricConfig"):
            CurriculumScheduler([1, 2])

    def test_difficulty_step_not_a_multiple_of_8_warns(self):
        with pytest.warns(UserWarning, match=(rf"{METRIC}.schedule_config.difficulty_step is 12, "
                                              r"not a multiple of 8")):
            CurriculumScheduler(linear(q=12))


@given(st.integers(-50, 50), st.integers(0, 300), st.integers(1, 100), st.integers(1, 16),
       st.booleans(), st.lists(st.integers(0, 400), min_size=1, max_size=30))
def test_update_is_the_spec_sticky_rule(lo, span, total, q, legacy, steps):
    # Spec §2.2: current <- get_difficulty(step) while current < max, for any step order.
    hi = lo + span
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CurriculumScheduler(linear(lo, hi, total, q), legacy_rounding=legacy)
    current = lo
    for step in steps:
        if current < hi:
            current = spec_fixed_root(step, lo, hi, total, q, 1, not legacy)
        assert s.update_difficulty(step) == current
        assert math.isfinite(current) and current <= hi
