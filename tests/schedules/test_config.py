"""Rules that split a budget into cycles, and ScheduleConfig validation."""

import math

import numpy as np
import pytest

from algoperf_reinit.schedules import (
    Decay,
    ScheduleConfig,
    Warmup,
    build_cycle_table,
    cycle_lengths,
    plan_cycles,
    warmup_fn,
)


class TestLengths:
    def test_equal_cycles_split_the_budget_as_evenly_as_integers_allow(self):
        assert cycle_lengths(ScheduleConfig(num_cycles=3), 10) == [3.0, 3.0, 4.0]
        assert cycle_lengths(ScheduleConfig(num_cycles=4), 1000) == [250.0] * 4

    def test_explicit_lengths_may_leave_a_tail(self):
        table = build_cycle_table(ScheduleConfig(cycle_lengths=(50, 100)), 200, 1.0, 0.0)
        assert table.boundaries() == [0.0, 50.0, 150.0]
        assert float(table(180)) == 0.0  # held at the end value

    def test_fractions_make_an_asymmetric_short_first_cycle(self):
        table = build_cycle_table(ScheduleConfig(cycle_fractions=(0.1, 0.45, 0.45)), 1000, 1.0,
                                  0.0)
        assert table.boundaries() == [0.0, 100.0, 550.0, 1000.0]

    def test_cycle_mul_grows_lengths_geometrically_and_fills_the_budget(self):
        lengths = cycle_lengths(ScheduleConfig(num_cycles=4, cycle_mul=2.0), 1500)
        assert lengths == [100.0, 200.0, 400.0, 800.0]
        seconds = cycle_lengths(ScheduleConfig(num_cycles=3, cycle_mul=1.5, clock="seconds"), 95.0)
        np.testing.assert_allclose(seconds, [20.0, 30.0, 45.0])

    def test_cycle_limit_keeps_the_first_cycles_and_holds_after(self):
        config = ScheduleConfig(num_cycles=4, cycle_limit=2, end_value=0.01)
        table = build_cycle_table(config, 400, 1.0, 0.0)
        assert table.num_cycles == 2
        assert table.boundaries() == [0.0, 100.0, 200.0]
        assert float(table(399)) == pytest.approx(0.01)


class TestPerCycle:
    def test_seed_alterations_cycle_decay_and_scales(self):
        config = ScheduleConfig(
            alter_lr=(0.0, 0.002, -0.001), alter_warmup=(0.0, 0.1, -0.05),
            lr_scales=(1.0, 2.0, 1.0), cycle_decay=0.5,
        )
        cycles = plan_cycles(config, 3000, 0.004, 0.1)
        assert [c.peak for c in cycles] == pytest.approx([0.004, 0.006 * 2 * 0.5, 0.003 * 0.25])
        assert [c.warmup for c in cycles] == [100.0, 200.0, 50.0]

    def test_warmup_length_is_the_seeds_int_of_fraction_times_length(self):
        cycles = plan_cycles(ScheduleConfig(num_cycles=3), 1000, 1.0, 0.15)
        # lengths 333, 333, 334 -> int(0.15 * length)
        assert [c.warmup for c in cycles] == [49.0, 49.0, 50.0]

    def test_warmup_scales_multiply_the_fraction(self):
        cycles = plan_cycles(ScheduleConfig(warmup_scales=(1.0, 0.0)), 200, 1.0, 0.2)
        assert [c.warmup for c in cycles] == [20.0, 0.0]

    def test_per_cycle_shapes_and_values(self):
        config = ScheduleConfig(
            warmup_shapes=("linear", Warmup.cosine(), warmup_fn(10, {"learning_rate": 1,
                                                                       "warmup_factor": 0.1},
                                                                   shape="log")),
            decay_shapes=["cosine", "linear", Decay.wsd(0.5)],
            init_value=(0.0, 0.1, 0.2), end_value=0.05,
        )
        assert [w.kind for w in config.warmup_shapes] == ["linear", "cosine", "log"]
        cycles = plan_cycles(config, 300, 1.0, 0.1)
        assert [c.init_value for c in cycles] == [0.0, 0.1, 0.2]
        assert [c.decay_shape.kind for c in cycles] == ["cosine", "linear", "wsd"]

    def test_end_factor_is_relative_to_each_peak(self):
        cycles = plan_cycles(ScheduleConfig(num_cycles=2, cycle_decay=0.5, end_factor=0.1), 100,
                             1.0, 0.0)
        assert [c.end_value for c in cycles] == pytest.approx([0.1, 0.05])

    def test_none_warmup_has_zero_length(self):
        cycles = plan_cycles(ScheduleConfig(warmup_shapes=("linear", "none")), 100, 1.0, 0.2)
        assert [c.warmup for c in cycles] == [10.0, 0.0]

    def test_seconds_clock_keeps_fractional_warmups(self):
        table = build_cycle_table(ScheduleConfig(num_cycles=2, clock="seconds"), 7.5, 1.0, 0.1)
        np.testing.assert_allclose(np.asarray(table.warmup), [0.375, 0.375])
        assert float(table(3.75 + 0.375)) == pytest.approx(1.0)


class TestErrors:
    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            (dict(alter_lr=(0, 1), alter_warmup=(0, 0, 0)),
             r"disagree on the number of cycles \(alter_lr=2, alter_warmup=3\)"),
            (dict(num_cycles=2, decay_shapes=("cosine",) * 3), r"num_cycles=2"),
            (dict(warmup_shapes="lienar"), r"warmup_shapes must be one of 'none', 'linear', "
             r"'cosine', .*got 'lienar'; did you mean 'linear'\?"),
            (dict(decay_shapes=("cosine", "cosin")),
             r"decay_shapes\[1\] must be one of .*got 'cosin'; did you mean 'cosine'\?"),
            (dict(num_cycles=0), r"num_cycles must be an int >= 1, got 0"),
            (dict(cycle_mul=-1.0), r"cycle_mul must be > 0, got -1.0"),
            (dict(cycle_decay=math.nan), r"cycle_decay must be a number, not NaN"),
            (dict(alter_lr=(0.0, math.nan)), r"alter_lr\[1\] must be a number, not NaN"),
            (dict(lr_scales=(1.0, -2.0)), r"lr_scales\[1\] must be >= 0, got -2.0"),
            (dict(cycle_fractions=(0.5, 0.4)), r"cycle_fractions must sum to 1"),
            (dict(cycle_fractions=(0.5, 0.5), cycle_lengths=(1, 1)), "not both"),
            (dict(cycle_lengths=(10, -1)), r"cycle_lengths\[1\] must be > 0, got -1"),
            (dict(cycle_limit=0), r"cycle_limit must be an int >= 1, got 0; or None"),
            (dict(end_factor=1.5), r"end_factor must be in \[0, 1\], got 1.5"),
            (dict(clock="epochs"), r"clock must be one of"),
            (dict(alter_lr=()), r"alter_lr must be a scalar or a non-empty sequence, got \(\)"),
        ],
    )
    def test_bad_config(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            ScheduleConfig(**kwargs)

    def test_wrong_types(self):
        with pytest.raises(TypeError, match=r"alter_lr\[0\] must be a real number, got 'a'"):
            ScheduleConfig(alter_lr=("a",))
        with pytest.raises(TypeError, match="decay_shapes must be a shape name"):
            ScheduleConfig(decay_shapes=len)

    @pytest.mark.parametrize(
        ("config", "budget", "lr", "wf", "match"),
        [
            (ScheduleConfig(), 0, 1.0, 0.1, r"budget must be > 0, got 0"),
            (ScheduleConfig(), -5, 1.0, 0.1, r"budget must be > 0"),
            (ScheduleConfig(), 10.5, 1.0, 0.1, r"budget must be a whole number of steps"),
            (ScheduleConfig(), math.nan, 1.0, 0.1, r"budget must be a number, not NaN"),
            (ScheduleConfig(num_cycles=5), 3, 1.0, 0.1, r"5 cycles do not fit in a budget of 3 steps"),
            (ScheduleConfig(), 100, 1.0, 1.0, r"cycle 0: warmup fraction must be in \[0, 1\), got 1.0"),
            (ScheduleConfig(), 100, 1.0, -0.1, r"warmup fraction must be in \[0, 1\)"),
            (ScheduleConfig(alter_warmup=(0, 0.95)), 100, 1.0, 0.1, r"cycle 1: warmup fraction"),
            (ScheduleConfig(alter_lr=(0, -2.0)), 100, 1.0, 0.1, r"cycle 1: peak must be > 0, got -1.0"),
            (ScheduleConfig(), 100, -1.0, 0.1, r"peak must be > 0, got -1.0"),
            (ScheduleConfig(cycle_lengths=(80, 40)), 100, 1.0, 0.1, r"cycle_lengths sum to 120, more than the budget 100"),
            (ScheduleConfig(end_value=2.0), 100, 1.0, 0.1, r"cycle 0: end_value must be in \[0, peak=1\]"),
        ],
    )
    def test_bad_build(self, config, budget, lr, wf, match):
        with pytest.raises(ValueError, match=match):
            build_cycle_table(config, budget, lr, wf)


class TestFromDict:
    def test_seed_dict_with_state_keys_and_aliases(self):
        seed = {
            "has_multiple": True,
            "reinit_steps": [1, 2],
            "warmup_schedule_fns": ["linear", "linear", "cosine"],
            "decay_schedule_fns": ["cosine", "cosine", "linear"],
            "alter_decays": [0, 0.002, -0.001],
            "alter_warmups": [0, 0.01, 0.0],
            "num_early_stops": 0,
            "currently_stopping": False,
            "stop_metric": {"window": 3},
            "reset_metric": {},
        }
        config = ScheduleConfig.from_dict(seed)
        assert config.num_cycles == 3
        assert config.alter_lr == (0.0, 0.002, -0.001)
        assert config.alter_warmup == (0.0, 0.01, 0.0)
        assert config.decay_shapes[2] == Decay.linear()

    def test_seed_names_alter_lr_and_alter_warmupfactor(self):
        config = ScheduleConfig.from_dict({"alter_lr": [0, 1e-3], "alter_warmupfactor": [0, 0]})
        assert config.num_cycles == 2

    def test_unknown_key_is_named(self):
        with pytest.raises(ValueError, match=r"schedule_params key must be one of "
                                             r"'alter_decays', .*got 'alter_lrs'"):
            ScheduleConfig.from_dict({"alter_lrs": [0]})

    def test_two_aliases_of_one_field(self):
        with pytest.raises(ValueError, match=r"'alter_lr' and 'alter_decays' both set 'alter_lr'"):
            ScheduleConfig.from_dict({"alter_lr": [0], "alter_decays": [0]})

    def test_not_a_mapping(self):
        with pytest.raises(TypeError, match="schedule_params must be a mapping"):
            ScheduleConfig.from_dict([("alter_lr", 0)])

    def test_config_is_frozen(self):
        config = ScheduleConfig()
        with pytest.raises(AttributeError):
            config.num_cycles = 3  # type: ignore[misc]


def test_end_factor_and_end_value_are_mutually_exclusive():
    from algoperf_reinit import ScheduleConfig

    with pytest.raises(ValueError, match=r"end_value must be 0 \(the default\) when end_factor "
                                         r"is set, got 1e-05; end_factor=0.1 and end_value "
                                         "are mutually exclusive"):
        ScheduleConfig(end_factor=0.1, end_value=1e-5)
    assert ScheduleConfig(end_factor=0.1, end_value=(0.0, 0.0), num_cycles=2).end_factor == 0.1


def test_an_empty_seed_list_is_named_by_the_key_given():
    from algoperf_reinit import ScheduleConfig

    seed = {"warmup_schedule_fns": [], "decay_schedule_fns": [], "alter_lr": [],
            "alter_warmupfactor": []}
    with pytest.raises(ValueError, match=r"^warmup_schedule_fns must be a scalar or a "
                                         r"non-empty sequence, got \[\]; warmup_schedule_fns "
                                         "sets ScheduleConfig.warmup_shapes$"):
        ScheduleConfig.from_dict(seed)
    with pytest.raises(ValueError, match=r"^lr_scales must be a scalar or a non-empty"):
        ScheduleConfig.from_dict({"lr_scales": ()})
