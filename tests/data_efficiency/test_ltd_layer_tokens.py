"""Layer-token counters and the layer-token learning-rate schedule (a new clock)."""

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algoperf_reinit import optim
from algoperf_reinit.data_efficiency import (
    LayerTokenCounter,
    LayerTokenLRScheduleConfig,
    RandomLTDScheduler,
    ShapeBuckets,
    _layer_tokens,
    layer_token_lr_table,
    monotone_runs,
    set_layer_tokens,
    step_layer_tokens,
)
from algoperf_reinit.schedules import ScheduleConfig, current_learning_rate

CONFIG = {"total_layer_num": 6, "random_ltd_layer_num": 4, "random_ltd_layer_id": [1, 2, 3, 4],
          "global_batch_size": 3,
          "random_ltd_schedule": {"min_value": 8, "max_value": 128,
                                  "schedule_type": "fixed_linear",
                                  "schedule_config": {"require_steps": 40,
                                                      "seq_per_step": 16}}}


def test_doctests():
    assert doctest.testmod(_layer_tokens).failed == 0


class TestStepLayerTokens:
    @pytest.mark.parametrize("seq,kept,want", [
        (128, 64, 3 * (64 * 4 + 128 * 2)),
        (128, None, 3 * 128 * 6),
        (128, 200, 3 * 128 * 6),  # kept >= seq: no dropping
        (32, 64, 3 * 32 * 6),  # a curriculum-truncated batch shorter than the kept length
        (128, 0, 3 * 128 * 2),
    ])
    def test_formula(self, seq, kept, want):
        assert step_layer_tokens(3, seq, kept, total_layer_num=6, ltd_layers=4) == want

    def test_invalid(self):
        with pytest.raises(ValueError, match=r"ltd_layers must be an int in \[0, 6\], got 7"):
            step_layer_tokens(3, 128, 64, total_layer_num=6, ltd_layers=7)
        with pytest.raises(TypeError, match="kept must be"):
            step_layer_tokens(3, 128, 6.5, total_layer_num=6, ltd_layers=2)


class TestCounter:
    def test_equals_deepspeeds_count_without_buckets_at_full_length(self):
        scheduler = RandomLTDScheduler(CONFIG)
        counter = LayerTokenCounter.from_config(scheduler.config)
        for step in range(60):
            for _ in range(2):  # gradient accumulation: two micro-batches per step
                kept = scheduler.update_seq(step)
                counter.update(step, seq_len=128, kept=kept)
            assert counter.layer_tokens == scheduler.state.consumed_layer_tokens

    def test_bucketed_and_truncated_counts_what_ran(self):
        scheduler = RandomLTDScheduler(CONFIG, min_clamp=True)
        runs = monotone_runs(scheduler.get_value, first_step=0, max_value=128, initial=8)
        buckets = ShapeBuckets.from_runs(runs, max_buckets=3)
        counter = LayerTokenCounter.from_config(scheduler.config)
        want = 0
        for step in range(60):
            seq = min(128, 32 + 4 * step)  # a growing (curriculum) length
            kept = buckets(scheduler.update_seq(step))
            counter.update(step, seq_len=seq, kept=kept)
            want += 3 * (min(kept, seq) * 4 + seq * 2)
        assert counter.layer_tokens == want
        assert counter.layer_tokens < scheduler.state.consumed_layer_tokens

    def test_state_round_trip_and_order(self):
        counter = LayerTokenCounter(4, 2, batch_size=2)
        counter.update(0, seq_len=16, kept=8)
        counter.update(3, seq_len=16, kept=8)
        other = LayerTokenCounter(4, 2, batch_size=2)
        other.load_state_dict(counter.state_dict())
        assert other.update(3, seq_len=16, kept=8) == counter.layer_tokens == 2 * 2 * (8 * 2 + 16 * 2)
        with pytest.raises(ValueError, match="step must be >= the last step counted, 3"):
            other.update(2, seq_len=16, kept=8)

    def test_batch_size_needed(self):
        with pytest.raises(ValueError, match="batch_size must be given"):
            LayerTokenCounter(4, 2).update(0, seq_len=16, kept=8)
        assert LayerTokenCounter(4, 2).update(0, seq_len=16, kept=8, batch_size=1) == 48


def lr_by_hand(t, peak, warmup, total):
    if t < warmup:
        return peak * t / warmup
    progress = min((t - warmup) / (total - warmup), 1.0)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


class TestLRSchedule:
    cfg = LayerTokenLRScheduleConfig(enabled=True, total_layer_tokens=2_000_000,
                                     warmup_layer_tokens=300_000)

    def test_against_a_hand_computed_sequence(self):
        table = layer_token_lr_table(self.cfg, 3e-3)
        ts = np.array([0, 1, 150_000, 299_999, 300_000, 700_000, 1_150_000, 1_999_999,
                       2_000_000, 3_000_000], np.float64)
        want = [lr_by_hand(t, 3e-3, 3e5, 2e6) for t in ts]
        np.testing.assert_allclose(table(ts), want, rtol=2e-5, atol=1e-10)

    def test_decay_config_and_cycles(self):
        decay = ScheduleConfig(num_cycles=2, decay_shapes="linear", clock="layer_tokens")
        table = layer_token_lr_table(self.cfg, 1.0, decay, capacity=4)
        assert table.capacity == 4 and table.boundaries() == [0.0, 1e6, 2e6]
        # the first cycle warms up, the second starts at its peak and decays linearly
        np.testing.assert_allclose(table(np.array([150_000.0, 650_000.0, 1e6, 1.5e6])),
                                   [0.5, 0.5, 1.0, 0.5], rtol=1e-5)

    def test_errors(self):
        with pytest.raises(ValueError, match=r"layer_token_lr_schedule\.enabled must be true"):
            layer_token_lr_table(LayerTokenLRScheduleConfig(), 1.0)
        with pytest.raises(ValueError, match=r"decay\.clock must be 'layer_tokens'"):
            layer_token_lr_table(self.cfg, 1.0, ScheduleConfig())
        with pytest.raises(ValueError, match=r"warmup_layer_tokens must be < the first cycle"):
            layer_token_lr_table(self.cfg, 1.0, ScheduleConfig(num_cycles=8,
                                                               clock="layer_tokens"))

    def test_optimizer_follows_the_clock_without_recompiling(self):
        table = layer_token_lr_table(self.cfg, 1e-2)
        tx = optim.nadamw(table, clock="layer_tokens")
        params = {"w": jnp.ones(3)}
        opt_state = tx.init(params)
        traces = []

        @jax.jit
        def train_step(params, opt_state):
            traces.append(1)
            updates, opt_state = tx.update({"w": jnp.ones(3)}, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        counter = LayerTokenCounter(6, 4, batch_size=64)
        for step in range(12):
            tokens = counter.update(step, seq_len=512, kept=128 + 32 * step)
            opt_state = set_layer_tokens(opt_state, tokens)
            lr = current_learning_rate(opt_state, clock="layer_tokens")
            assert lr == pytest.approx(lr_by_hand(tokens, 1e-2, 3e5, 2e6), rel=2e-5)
            params, opt_state = train_step(params, opt_state)
        assert len(traces) == 1
        assert 0 < lr < 1e-2  # the run went through the warmup into the decay
