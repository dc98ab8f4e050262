"""The seed design's builders: warmup_fn, decay_fn, combine_warmup_decay_fn, jax_lr_schedule."""

import collections

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algoperf_reinit.schedules import (
    CycleTable,
    Decay,
    DecayPiece,
    LRSchedule,
    ScheduleConfig,
    Warmup,
    WarmupPiece,
    combine_warmup_decay_fn,
    decay_fn,
    hyperparameter,
    jax_lr_schedule,
    warmup_fn,
)

Hyperparameters = collections.namedtuple("Hyperparameters", ["learning_rate", "warmup_factor"])
HP = Hyperparameters(learning_rate=2e-3, warmup_factor=0.1)


class TestHyperparameters:
    def test_namedtuple_and_mapping(self):
        assert hyperparameter(HP, "learning_rate") == 2e-3
        assert hyperparameter({"warmup_factor": 0.3}, "warmup_factor") == 0.3

    def test_missing_is_named(self):
        with pytest.raises(ValueError, match="hyperparameters must provide 'warmup_factor'"):
            jax_lr_schedule(100, {"learning_rate": 1e-3})


class TestWarmupFn:
    def test_piece(self):
        piece = warmup_fn(1000, HP, alter_lr_by=1e-3, alter_warmup_by=0.05)
        assert isinstance(piece, WarmupPiece)
        assert piece.steps == 150 and piece.peak == pytest.approx(3e-3)
        np.testing.assert_allclose(piece(jnp.array([0, 75, 150, 400])), [0, 1.5e-3, 3e-3, 3e-3],
                                   rtol=1e-6)

    def test_shapes_and_errors(self):
        assert warmup_fn(100, HP, shape="none").steps == 0
        assert warmup_fn(100, HP, shape=Warmup.cosine()).shape.kind == "cosine"
        with pytest.raises(ValueError, match=r"learning_rate \+ alter_lr_by must be > 0, got"):
            warmup_fn(100, HP, alter_lr_by=-1.0)
        with pytest.raises(ValueError, match=r"warmup_factor \+ alter_warmup_by must be in \[0, 1\)"):
            warmup_fn(100, HP, alter_warmup_by=0.95)
        with pytest.raises(ValueError, match=r"step_hint must be an int >= 1, got 0"):
            warmup_fn(0, HP)
        with pytest.raises(ValueError, match="exponential warmup needs init_value > 0"):
            warmup_fn(100, HP, shape="exponential")


class TestDecayFn:
    def test_piece_counts_from_its_own_start(self):
        piece = decay_fn(1000, HP)
        assert isinstance(piece, DecayPiece) and piece.steps == 900
        reference = optax.cosine_decay_schedule(2e-3, 900)
        t = jnp.arange(0, 1000, 7)
        np.testing.assert_allclose(piece(t), reference(t), rtol=1e-5, atol=2e-9)

    def test_end_value_bound(self):
        with pytest.raises(ValueError, match=r"end_value must be in \[0, peak=0.002\]"):
            decay_fn(100, HP, end_value=1.0)


class TestCombine:
    def test_default_is_the_algoperf_cycle(self):
        table = combine_warmup_decay_fn(1000, HP)
        assert isinstance(table, CycleTable) and table.num_cycles == 1
        reference = optax.warmup_cosine_decay_schedule(0.0, 2e-3, 100, 1000)
        t = jnp.arange(0, 1100)
        np.testing.assert_allclose(table(t), reference(t), rtol=1e-5, atol=2e-9)

    @pytest.mark.parametrize(
        ("warm", "decay"),
        [
            ("cosine", "linear"),
            (Warmup.polynomial(2.0), Decay.wsd(0.3, "1-sqrt")),
            (warmup_fn, decay_fn),
        ],
    )
    def test_accepts_names_shapes_and_builders(self, warm, decay):
        table = combine_warmup_decay_fn(500, HP, warm, decay, alter_lr_by=1e-3)
        assert float(table(50)) == pytest.approx(3e-3)
        assert float(table(499)) < 3e-3

    def test_pieces_combine(self):
        args = (500, HP, 0.0, 0.0)
        table = combine_warmup_decay_fn(500, HP, warmup_fn(*args, shape="cosine"),
                                        decay_fn(*args, shape="linear"))
        assert int(table.warmup_shape[0]) == Warmup.cosine().shape_id
        assert int(table.decay_shape[0]) == Decay.linear().shape_id

    def test_mismatched_pieces(self):
        with pytest.raises(ValueError, match="the warmup ends at"):
            combine_warmup_decay_fn(500, HP, warmup_fn(500, HP, alter_lr_by=1e-3), decay_fn)
        with pytest.raises(ValueError, match=r"must add up to step_hint=500"):
            combine_warmup_decay_fn(500, HP, warmup_fn(400, HP), decay_fn)
        with pytest.raises(TypeError, match="warmup_fn must be a shape name"):
            combine_warmup_decay_fn(500, HP, 3, decay_fn)


class TestJaxLrSchedule:
    def test_unpacks_as_the_seeds_tuple(self):
        result = jax_lr_schedule(1000, HP, {"alter_lr": [0, 1e-3]})
        assert isinstance(result, LRSchedule)
        schedule, has_multiple, reinit_steps = result
        assert has_multiple is True
        assert reinit_steps == [500] and all(isinstance(s, int) for s in reinit_steps)
        assert float(schedule(500)) == 0.0  # new cycle, warmup from 0
        assert float(schedule(550)) == pytest.approx(3e-3)

    def test_reinit_steps_are_the_table_boundaries(self):
        config = ScheduleConfig(num_cycles=4, cycle_mul=2.0)
        schedule, _, reinit_steps = jax_lr_schedule(1500, HP, config)
        assert reinit_steps == [int(b) for b in schedule.boundaries()[1:-1]] == [100, 300, 700]

    def test_none_and_single_cycle(self):
        schedule, has_multiple, reinit_steps = jax_lr_schedule(100, HP)
        assert not has_multiple and reinit_steps == []
        assert float(schedule(10)) == pytest.approx(2e-3)

    def test_seconds_clock(self):
        config = ScheduleConfig(num_cycles=3, clock="seconds")
        schedule, has_multiple, reinit_steps = jax_lr_schedule(90.0, HP, config)
        assert has_multiple and reinit_steps == pytest.approx([30.0, 60.0])
        assert float(schedule(33.0)) == pytest.approx(2e-3)  # warmup of 3 s ends at 33 s
        assert float(schedule(31.5)) == pytest.approx(1e-3)

    def test_capacity_pads(self):
        schedule, _, _ = jax_lr_schedule(100, HP, capacity=8)
        assert schedule.capacity == 8 and schedule.num_cycles == 1

    def test_seed_dict_errors_propagate(self):
        with pytest.raises(ValueError, match=r"schedule_params key must be one of .*got 'warmups'"):
            jax_lr_schedule(100, HP, {"warmups": []})


class TestNamesInMessages:
    """Errors name what the caller passed: hyperparameters here, peak/warmup_fraction below."""

    @pytest.mark.parametrize(
        ("hp", "params", "match"),
        [
            ({"learning_rate": -1.0, "warmup_factor": 0.1}, None,
             r"^learning_rate must be > 0, got -1.0$"),
            ({"learning_rate": "0.1", "warmup_factor": 0.1}, None,
             r"^learning_rate must be a real number, got '0.1' of type str$"),
            ({"learning_rate": 1.0, "warmup_factor": 0.1}, {"alter_lr": [0, -2.0]},
             r"cycle 1: peak must be > 0, got -1.0; from learning_rate=1.0, alter_lr=-2.0"),
            ({"learning_rate": 1.0, "warmup_factor": 0.9}, {"alter_warmup": [0, 0.2]},
             r"cycle 1: warmup fraction must be in \[0, 1\), got 1.1; from warmup_factor=0.9"),
        ],
    )
    def test_jax_lr_schedule_names_the_hyperparameters(self, hp, params, match):
        error = TypeError if isinstance(hp["learning_rate"], str) else ValueError
        with pytest.raises(error, match=match):
            jax_lr_schedule(100, hp, params)

    def test_the_table_builders_name_their_arguments(self):
        from algoperf_reinit.schedules import build_cycle_table, plan_cycles

        with pytest.raises(ValueError, match=r"^peak must be > 0, got 0.0$"):
            plan_cycles(ScheduleConfig(), 100, 0.0, 0.1)
        with pytest.raises(ValueError, match=r"from warmup_fraction=0.95, alter_warmup=0.1"):
            build_cycle_table(ScheduleConfig(alter_warmup=(0.0, 0.1)), 100, 1.0, 0.95)
        with pytest.raises(TypeError, match=r"^warmup_fraction must be a real number"):
            plan_cycles(ScheduleConfig(), 100, 1.0, None)
