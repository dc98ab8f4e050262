"""Plateau detector: config validation, rules on constructed sequences, jit contract."""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algoperf_reinit.reinit import (
    PlateauConfig,
    PlateauReason,
    PlateauState,
    feed_eval_results,
    init_plateau_state,
    latest_validation_value,
    reset_plateau,
    update_plateau,
)

R = PlateauReason
# One jitted update shared by all tests: equal configs hash equal, so they share a compile.
UPDATE = jax.jit(update_plateau, static_argnums=0)


def run(config, values, state=None):
    """Feeds ``values`` through the jitted update; returns (fired indices, reasons, state)."""
    state = init_plateau_state(config) if state is None else state
    reasons = []
    for v in values:
        state, triggered, reason = UPDATE(config, state, jnp.float32(v))
        assert bool(triggered) == (int(reason) != R.NONE)
        reasons.append(int(reason))
    fired = [i for i, r in enumerate(reasons) if r != R.NONE]
    return fired, reasons, state


def same_state(a, b):
    for name, x, y in zip(PlateauState._fields, a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)


PLATEAU = [5.0, 4.0, 3.0, 2.0] + [2.0] * 10  # best reached at index 3


class TestPlateauConfig:
    @pytest.mark.parametrize(
        "metric, key",
        [("loss", "validation/loss"), ("validation/accuracy", "validation/accuracy"),
         ("ctc_loss", "validation/ctc_loss")],
    )
    def test_metric_resolves_to_a_validation_key(self, metric, key):
        assert PlateauConfig(metric=metric).metric == key

    @pytest.mark.parametrize("metric", ["test/loss", "train/loss", "test/accuracy"])
    def test_test_and_train_metrics_are_rejected(self, metric):
        with pytest.raises(ValueError, match=rf"validation/\* metric, got '{metric}'; only validation metrics"):
            PlateauConfig(metric=metric)

    @pytest.mark.parametrize(
        "metric", ["", "validation/", "score", "validation/num_examples", "eval/loss", "a/b/c"]
    )
    def test_other_bad_metric_names_are_rejected(self, metric):
        with pytest.raises(ValueError, match="metric"):
            PlateauConfig(metric=metric)

    @pytest.mark.parametrize(
        "kwargs, error, match",
        [
            (dict(metric=3), TypeError, "metric must be a str"),
            (dict(mode="minimum"), ValueError, r"mode must be one of 'min', 'max', got 'minimum'"),
            (dict(ema=1.0), ValueError, r"ema must be in \[0, 1\), got 1.0"),
            (dict(ema=-0.1), ValueError, r"ema must be in \[0, 1\)"),
            (dict(ema=True), TypeError, "ema must be a real number, got True of type bool"),
            (dict(rel_threshold=-1e-3), ValueError, "rel_threshold must be >= 0"),
            (dict(abs_threshold=math.nan), ValueError, "abs_threshold must be a number, not NaN"),
            (dict(patience=0), ValueError, r"patience must be an int in \[1, "),
            (dict(patience=1.5), TypeError, "patience must be an int"),
            (dict(cooldown=-1), ValueError, "cooldown must be an int in"),
            (dict(window=0), ValueError, "window must be an int in"),
            (dict(slope_epsilon=math.inf), ValueError, "slope_epsilon must be finite"),
            (dict(window_epsilon="0"), TypeError, "window_epsilon must be a real number"),
            (dict(min_evals=-1), ValueError, "min_evals must be an int in"),
            (dict(patience_semantics="keras"), ValueError, "patience_semantics must be one of"),
            (dict(patience=None), ValueError, "at least one rule must be enabled"),
        ],
    )
    def test_bad_fields_name_the_field_value_and_rule(self, kwargs, error, match):
        with pytest.raises(error, match=match):
            PlateauConfig(**kwargs)

    def test_pytorch_semantics_allow_zero_patience(self):
        assert PlateauConfig(patience=0, patience_semantics="pytorch").patience == 0

    def test_frozen_and_hashable(self):
        cfg = PlateauConfig(ema=np.float64(0.5), patience=np.int64(3))
        assert type(cfg.ema) is float and type(cfg.patience) is int
        assert hash(cfg) == hash(PlateauConfig(ema=0.5, patience=3))
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.patience = 4


class TestPatienceRule:
    def test_clear_plateau_fires_after_patience_evals(self):
        fired, reasons, state = run(PlateauConfig(patience=3), PLATEAU)
        assert fired == [6, 9, 12]  # 3 non-improving evals after the best at index 3
        assert {reasons[i] for i in fired} == {R.PATIENCE}
        assert int(state.num_triggers) == 3 and int(state.last_reason) == R.PATIENCE

    @pytest.mark.parametrize("patience", [1, 4])
    @pytest.mark.parametrize("cooldown", [0, 2])
    def test_semantics_differ_by_exactly_one_eval(self, patience, cooldown):
        values = [5.0, 4.0, 3.0] + [3.0] * 30
        common = dict(patience=patience, cooldown=cooldown)
        optax_fired, _, _ = run(PlateauConfig(patience_semantics="optax", **common), values)
        torch_fired, _, _ = run(PlateauConfig(patience_semantics="pytorch", **common), values)
        assert optax_fired[0] == 2 + patience
        assert torch_fired[0] - optax_fired[0] == 1

    def test_pytorch_patience_zero_fires_on_first_bad_eval(self):
        cfg = PlateauConfig(patience=0, patience_semantics="pytorch")
        assert run(cfg, [3.0, 2.0, 2.5, 1.0])[0] == [2]

    @pytest.mark.parametrize("patience, cooldown, rtol, atol", [(2, 0, 1e-3, 0.0), (3, 2, 0.0, 0.05)])
    def test_optax_semantics_match_optax_reduce_on_plateau(self, patience, cooldown, rtol, atol):
        tx = optax.contrib.reduce_on_plateau(
            factor=0.5, patience=patience, rtol=rtol, atol=atol, cooldown=cooldown
        )
        params = jnp.zeros((), jnp.float32)
        step = jax.jit(lambda s, v: tx.update(params, s, value=v)[1])
        cfg = PlateauConfig(patience=patience, cooldown=cooldown, rel_threshold=rtol,
                            abs_threshold=atol)
        for seed in range(3):
            values = plateau_walk(seed)
            opt_state, oracle, scale = tx.init(params), [], 1.0
            for i, v in enumerate(values):
                opt_state = step(opt_state, jnp.float32(v))
                if float(opt_state.scale) < scale:
                    oracle.append(i)
                    scale = float(opt_state.scale)
            assert oracle, "the sequence must contain plateaus"
            assert run(cfg, values)[0] == oracle, f"{seed=}"

    @pytest.mark.parametrize("patience, cooldown", [(0, 0), (2, 1), (3, 3)])
    def test_pytorch_semantics_match_its_documented_algorithm(self, patience, cooldown):
        cfg = PlateauConfig(patience=patience, cooldown=cooldown, patience_semantics="pytorch",
                            rel_threshold=0.0, abs_threshold=0.01)
        for seed in range(3):
            values = plateau_walk(seed)
            expected = pytorch_reference(values, patience, cooldown, 0.01)
            assert expected and run(cfg, values)[0] == expected, f"{seed=}"


def plateau_walk(seed, n=60):
    """A positive random walk with long flat stretches (steps of 0.1)."""
    rng = np.random.default_rng(seed)
    moves = rng.choice([-0.1, 0.0, 0.0, 0.0, 0.1], size=n)
    return list(np.round(3.0 + np.cumsum(moves), 1).astype(np.float32))


def pytorch_reference(values, patience, cooldown, threshold):
    """ReduceLROnPlateau's documented step (mode min, threshold_mode abs), transcribed."""
    best, bad, cool, fired = math.inf, 0, 0, []
    for i, v in enumerate(values):
        if v < best - threshold:
            best, bad = v, 0
        else:
            bad += 1
        if cool > 0:
            cool, bad = cool - 1, 0
        if bad > patience:
            fired.append(i)
            cool, bad = cooldown, 0
    return fired


class TestTrendRules:

    @pytest.mark.parametrize("ema", [0.0, 0.7])
    @pytest.mark.parametrize(
        "values",
        [list(np.linspace(5.0, 1.0, 60)), list(3.0 * np.exp(-np.arange(60) / 20.0) + 0.5)],
        ids=["linear", "exponential"],
    )
    def test_steady_descent_never_fires(self, ema, values):
        fired, _, state = run(PlateauConfig(ema=ema, patience=2, window=3, slope_epsilon=0.0), values)
        assert fired == []
        assert int(state.evals_since_best) == 0 and float(state.slope) < 0

    def test_a_rise_fires_the_slope_rule(self):
        cfg = PlateauConfig(patience=10, slope_epsilon=0.0)
        fired, reasons, state = run(cfg, [3.0, 2.5, 2.2, 2.0, 2.1, 2.3])
        assert fired[0] == 4 and reasons[4] == R.SLOPE
        assert float(state.slope) == pytest.approx(0.2)

    def test_slope_epsilon_tolerates_small_rises(self):
        cfg = PlateauConfig(patience=None, slope_epsilon=0.15)
        assert run(cfg, [3.0, 2.5, 2.2, 2.0, 2.1, 2.3])[0] == [5]

    def test_window_rule_fires_only_if_the_projection_misses_the_best(self):
        cfg = PlateauConfig(patience=None, window=3)
        slow = [3.0, 2.0, 2.6, 2.5, 2.45]  # 2.45 - 3 * 0.05 = 2.3 >= best 2.0
        fast = [3.0, 2.0, 2.6, 2.4, 2.2]  # 2.2 - 3 * 0.2 = 1.6 < 2.0: still on its way
        fired, reasons, _ = run(cfg, slow)
        assert fired == [4] and reasons[4] == R.WINDOW
        assert run(cfg, fast)[0] == []
        assert run(cfg, slow[:4])[0] == []  # only 2 evals since the best

    def test_window_epsilon_is_a_margin_on_the_best(self):
        slow = [3.0, 2.0, 2.6, 2.5, 2.45]  # projection 2.3
        assert run(PlateauConfig(patience=None, window=3, window_epsilon=0.2), slow)[0] == [4]
        assert run(PlateauConfig(patience=None, window=3, window_epsilon=0.4), slow)[0] == []

    def test_noisy_descent_fires_without_ema_but_not_with_it(self):
        t = np.arange(40)
        values = list(3.0 - 0.05 * t + 0.04 * (-1.0) ** t)  # upticks of +0.03 every 2nd eval
        assert run(PlateauConfig(patience=None, slope_epsilon=0.0, ema=0.0), values)[0]
        fired, _, state = run(PlateauConfig(patience=None, slope_epsilon=0.0, ema=0.7), values)
        assert fired == []
        assert float(state.slope) < 0

    def test_reason_priority_is_patience_then_window_then_slope(self):
        values = [3.0, 2.0, 2.04, 2.03, 2.13]  # only at index 4 does any rule hold: all three
        rules = dict(window=3, slope_epsilon=0.05)
        assert run(PlateauConfig(patience=3, **rules), values)[1] == [0, 0, 0, 0, R.PATIENCE]
        assert run(PlateauConfig(patience=None, **rules), values)[1] == [0, 0, 0, 0, R.WINDOW]
        assert run(PlateauConfig(patience=None, slope_epsilon=0.05), values)[1][4] == R.SLOPE


class TestSmoothing:
    def test_bias_corrected_ema_matches_a_float64_reference(self):
        values = [2.0, 1.0, 4.0, 3.5, -1.0, 0.25]
        cfg = PlateauConfig(ema=0.9, patience=10)
        state, acc = init_plateau_state(cfg), 0.0
        for n, v in enumerate(values, 1):
            prev = float(state.smoothed)
            state, _, _ = UPDATE(cfg, state, jnp.float32(v))
            acc = 0.9 * acc + 0.1 * v
            assert float(state.smoothed) == pytest.approx(acc / (1 - 0.9**n), rel=1e-5)
            if n > 1:
                assert float(state.slope) == pytest.approx(float(state.smoothed) - prev, abs=1e-6)
        assert float(run(cfg, [7.0])[2].smoothed) == pytest.approx(7.0)  # first value unbiased


SIGN_RULES = dict(patience=3, window=3, slope_epsilon=0.0, abs_threshold=0.01, rel_threshold=0.0)


class TestSignsAndModes:

    def test_negative_metric_behaves_like_a_shifted_positive_one(self):
        values = np.array([5.0, 4.5, 4.2, 4.25, 4.1, 4.3, 4.2, 4.15, 4.15, 4.15, 4.2, 4.4])
        cfg = PlateauConfig(ema=0.5, **SIGN_RULES)
        pos_fired, pos_reasons, _ = run(cfg, values - 1.0)  # around +3
        neg_fired, neg_reasons, _ = run(cfg, values - 7.0)  # around -3
        assert pos_fired and neg_fired == pos_fired and neg_reasons == pos_reasons

    def test_relative_threshold_never_counts_a_worse_negative_value_as_improvement(self):
        # (1 - rtol) * best would accept -2.99 as better than -3.0 for rtol = 0.01.
        values = [-3.0, -2.99, -2.98, -2.97, -2.96]
        fired, reasons, state = run(PlateauConfig(patience=3, rel_threshold=0.01), values)
        assert fired == [3] and reasons[3] == R.PATIENCE
        assert float(state.best) == pytest.approx(-3.0)

    def test_relative_threshold_scales_with_abs_best(self):
        cfg = PlateauConfig(patience=1, rel_threshold=0.1)
        assert run(cfg, [-3.0, -3.2])[0] == [1]  # 0.2 < 0.1 * 3: not an improvement
        assert run(cfg, [-3.0, -3.4])[0] == []

    def test_max_mode_mirrors_min_mode(self):
        values = np.array([5.0, 4.0, 3.5, 3.6, 3.2, 3.3, 3.3, 3.25, 3.4, 3.5, 3.1, 3.1, 3.1, 3.1])
        lo = run(PlateauConfig(mode="min", ema=0.3, **SIGN_RULES), values)
        hi = run(PlateauConfig(mode="max", ema=0.3, **SIGN_RULES), -values)
        assert lo[0] and hi[0] == lo[0] and hi[1] == lo[1]
        assert float(hi[2].best) == pytest.approx(-float(lo[2].best))

    def test_accuracy_plateau_and_drop(self):
        cfg = PlateauConfig(metric="accuracy", mode="max", patience=2, slope_epsilon=0.0)
        acc = [0.1, 0.3, 0.5, 0.6, 0.6, 0.6]
        fired, reasons, state = run(cfg, acc)
        assert fired == [5] and reasons[5] == R.PATIENCE
        assert float(state.best) == pytest.approx(0.6)
        fired, reasons, _ = run(cfg, [0.1, 0.3, 0.5, 0.45])
        assert fired == [3] and reasons[3] == R.SLOPE


class TestNonFinite:
    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
    def test_non_finite_value_only_counts_as_skipped(self, bad):
        cfg = PlateauConfig(ema=0.5, patience=3, window=2, slope_epsilon=0.0)
        _, _, before = run(cfg, [3.0, 2.0, 2.5])
        after, triggered, reason = UPDATE(cfg, before, jnp.float32(bad))
        assert not bool(triggered) and int(reason) == R.NONE
        same_state(after, before._replace(num_skipped=before.num_skipped + 1))

    def test_non_finite_values_in_the_middle_are_ignored(self):
        cfg = PlateauConfig(ema=0.3, patience=3, window=3, slope_epsilon=0.05)
        clean = [5.0, 4.0, 3.0, 3.2, 3.1, 3.0, 3.0, 3.3, 3.0, 3.0, 3.0]
        dirty = [*clean[:3], math.nan, *clean[3:6], math.inf, -math.inf, *clean[6:], math.nan]
        clean_fired, clean_reasons, clean_state = run(cfg, clean)
        _, dirty_reasons, dirty_state = run(cfg, dirty)
        finite_reasons = [r for r, v in zip(dirty_reasons, dirty, strict=True) if math.isfinite(v)]
        assert clean_fired and finite_reasons == clean_reasons
        assert int(dirty_state.num_skipped) == 4
        same_state(dirty_state, clean_state._replace(num_skipped=dirty_state.num_skipped))


class TestCooldownAndWarmup:
    def test_cooldown_suppresses_triggers_and_holds_patience(self):
        values = [3.0, 2.0] + [2.0] * 12
        assert run(PlateauConfig(patience=2), values)[0] == [3, 5, 7, 9, 11, 13]
        assert run(PlateauConfig(patience=2, cooldown=3), values)[0] == [3, 8, 13]

    def test_cooldown_suppresses_trend_rules_after_a_trigger(self):
        values = [3.0, 2.0, 2.1, 2.2, 2.3, 2.4, 2.5]  # rises on every eval from index 2
        assert run(PlateauConfig(patience=None, slope_epsilon=0.0), values)[0] == [2, 3, 4, 5, 6]
        cfg = PlateauConfig(patience=None, slope_epsilon=0.0, cooldown=2)
        assert run(cfg, values)[0] == [2, 5]

    def test_min_evals_holds_back_the_first_trigger(self):
        values = [3.0, 3.5, 4.0, 4.5, 5.0]
        assert run(PlateauConfig(patience=None, slope_epsilon=0.0), values)[0][0] == 1
        assert run(PlateauConfig(patience=None, slope_epsilon=0.0, min_evals=4), values)[0][0] == 3

    def test_patience_held_back_by_min_evals_fires_at_first_eligible_eval(self):
        values = [2.0] * 8
        assert run(PlateauConfig(patience=2), values)[0][0] == 2
        assert run(PlateauConfig(patience=2, min_evals=5), values)[0][0] == 4


class TestResetPlateau:
    def test_reset_clears_the_cycle_and_keeps_run_counters(self):
        cfg = PlateauConfig(patience=2, cooldown=2, slope_epsilon=0.0)
        _, _, state = run(cfg, [3.0, 2.0, 2.0, 2.0, math.nan])
        assert int(state.num_triggers) == 1
        fresh = jax.jit(functools.partial(reset_plateau, cfg))(state)
        assert int(fresh.count) == 0 and float(fresh.best) == math.inf
        assert int(fresh.cooldown_count) == 2 and int(fresh.evals_since_best) == 0
        assert float(fresh.ema_acc) == 0.0 and math.isnan(float(fresh.smoothed))
        for name in ("num_triggers", "num_evals", "num_skipped", "last_reason", "last_fed_step"):
            assert int(getattr(fresh, name)) == int(getattr(state, name)), name

    def test_new_cycle_warmup_spike_is_covered_by_cooldown(self):
        cfg = PlateauConfig(patience=None, slope_epsilon=0.0, cooldown=3)
        _, _, state = run(cfg, [3.0, 2.0, 1.5])
        state = reset_plateau(cfg, state)
        spike = [1.5, 2.5, 3.0, 2.0, 1.4, 1.5]
        fired, _, state = run(cfg, spike, state=state)
        assert fired == [5]  # the rises at 1 and 2 fall in the cooldown; the one at 5 does not
        no_cooldown = dataclasses.replace(cfg, cooldown=0)
        assert run(no_cooldown, spike, state=reset_plateau(no_cooldown, state))[0] == [1, 2, 5]
        assert float(state.best) == pytest.approx(1.4)

    def test_state_structure_is_stable_through_update_and_reset(self):
        cfg = PlateauConfig(window=2, slope_epsilon=0.0)
        state = init_plateau_state(cfg)
        updated, _, _ = UPDATE(cfg, state, jnp.float32(1.0), jnp.int32(5))
        both = [state, updated, reset_plateau(cfg, updated)]
        for s in both:
            assert jax.tree_util.tree_structure(s) == jax.tree_util.tree_structure(state)
            for x, y in zip(s, state, strict=True):
                assert x.shape == () and x.dtype == y.dtype
        assert {x.dtype for x in state} == {jnp.dtype("float32"), jnp.dtype("int32")}

        @jax.jit
        def maybe_reset(s, pred):
            return jax.lax.cond(pred, functools.partial(reset_plateau, cfg), lambda x: x, s)

        assert int(maybe_reset(updated, True).count) == 0
        assert int(maybe_reset(updated, False).count) == 1


class TestJitContract:
    def test_fifty_values_compile_once(self):
        cfg = PlateauConfig(ema=0.5, patience=3, window=4, slope_epsilon=0.01)
        traces = []

        def traced(state, value, step):
            traces.append(1)
            return update_plateau(cfg, state, value, step)

        update = jax.jit(traced)
        state = init_plateau_state(cfg)
        rng = np.random.default_rng(0)
        values = (2.0 + rng.normal(size=50)).astype(np.float32)
        values[[10, 20]] = [np.nan, np.inf]
        for i, v in enumerate(values):
            state, _, _ = update(state, jnp.float32(v), jnp.int32(100 * i + 1))
        state = reset_plateau(cfg, state)
        state, _, _ = update(state, jnp.float32(1.0), jnp.int32(10_000))
        assert len(traces) == 1
        assert update._cache_size() == 1
        assert int(state.num_evals) == 49 and int(state.num_skipped) == 2

    def test_runs_under_lax_scan(self):
        cfg = PlateauConfig(patience=3)

        @jax.jit
        def scan(values):
            def body(s, v):
                s, triggered, reason = update_plateau(cfg, s, v)
                return s, (triggered, reason)

            return jax.lax.scan(body, init_plateau_state(cfg), values)

        _, (triggered, reasons) = scan(jnp.asarray(PLATEAU, jnp.float32))
        assert list(np.flatnonzero(np.asarray(triggered))) == run(cfg, PLATEAU)[0]
        assert triggered.dtype == jnp.bool_ and reasons.dtype == jnp.int32

    def test_stale_steps_are_ignored(self):
        cfg = PlateauConfig(patience=1)
        f32, i32 = jnp.float32, jnp.int32
        state, _, _ = UPDATE(cfg, init_plateau_state(cfg), f32(2.0), i32(10))
        again, triggered, _ = UPDATE(cfg, state, f32(2.0), i32(10))
        same_state(again, state)
        assert not bool(triggered)
        newer, triggered, reason = UPDATE(cfg, state, f32(2.0), i32(11))
        assert bool(triggered) and int(reason) == R.PATIENCE and int(newer.last_fed_step) == 11

    def test_non_scalar_value_is_rejected(self):
        cfg = PlateauConfig()
        with pytest.raises(ValueError, match=r"value must be a scalar, got shape \(2,\)"):
            update_plateau(cfg, init_plateau_state(cfg), jnp.ones(2))

    def test_config_type_is_checked(self):
        with pytest.raises(TypeError, match="config must be a PlateauConfig"):
            init_plateau_state({"patience": 3})


def eval_entry(step, loss, **extra):
    metrics = {"train/loss": 0.1, "validation/loss": loss, "validation/accuracy": 0.5,
               "validation/num_examples": 100, "test/loss": -99.0, "score": 1.0}
    metrics.update(extra)
    return (step, metrics)


class TestLatestValidationValue:
    def test_newest_entry_and_only_the_validation_key(self):
        results = [eval_entry(1, 3.0), eval_entry(77, 2.5)]
        assert latest_validation_value(results, PlateauConfig()) == (77, 2.5)
        cfg = PlateauConfig(metric="validation/accuracy", mode="max")
        assert latest_validation_value(results, cfg) == (77, 0.5)

    def test_none_when_empty_or_no_validation_metrics(self):
        assert latest_validation_value([], PlateauConfig()) is None
        assert latest_validation_value([(5, {"train/loss": 1.0})], PlateauConfig()) is None

    def test_missing_metric_lists_available_validation_keys(self):
        match = (r"metric must be a metric of the evaluation at step 77, got 'validation/bleu'; "
                 r"available validation metrics: \['validation/accuracy', 'validation/loss'\]")
        with pytest.raises(ValueError, match=match):
            latest_validation_value([eval_entry(77, 2.5)], PlateauConfig(metric="bleu"))

    def test_array_values_and_bad_entries(self):
        assert latest_validation_value([eval_entry(3, jnp.float32(1.5))], PlateauConfig()) == (3, 1.5)
        with pytest.raises(TypeError, match=r"\(global_step, dict\) pairs"):
            latest_validation_value([(3, 1.5)], PlateauConfig())


class TestFeedEvalResults:
    CFG = PlateauConfig(ema=0.3, patience=2, slope_epsilon=0.02)
    LOSSES = (3.0, 2.5, 2.2, 2.1, 2.15, 2.1, 2.12, 2.11, 2.3)

    def test_calling_every_step_does_not_double_count(self):
        results, state = [], init_plateau_state(self.CFG)
        for i, loss in enumerate(self.LOSSES):
            results.append(eval_entry(1 + 40 * i, loss))
            for _ in range(3):  # several training steps see the same list
                state = feed_eval_results(self.CFG, state, results)
        _, _, direct = run(self.CFG, self.LOSSES)
        same_state(state, direct._replace(last_fed_step=jnp.int32(results[-1][0])))
        assert int(state.num_evals) == len(self.LOSSES) and int(state.num_triggers) > 0

    def test_feeding_a_backlog_at_once_equals_feeding_one_by_one(self):
        results = [eval_entry(1 + 40 * i, loss) for i, loss in enumerate(self.LOSSES)]
        one_by_one = init_plateau_state(self.CFG)
        for k in range(1, len(results) + 1):
            one_by_one = feed_eval_results(self.CFG, one_by_one, results[:k])
        at_once = feed_eval_results(self.CFG, init_plateau_state(self.CFG), results)
        same_state(at_once, one_by_one)
        same_state(feed_eval_results(self.CFG, at_once, results), at_once)

    def test_entries_without_validation_metrics_only_move_the_cursor(self):
        state = feed_eval_results(self.CFG, init_plateau_state(self.CFG), [(9, {"score": 1.0})])
        assert int(state.last_fed_step) == 9 and int(state.num_evals) == 0

    def test_nan_entry_is_skipped_once(self):
        results = [eval_entry(1, 3.0), eval_entry(2, math.nan)]
        state = feed_eval_results(self.CFG, init_plateau_state(self.CFG), results)
        state = feed_eval_results(self.CFG, state, results)
        assert int(state.num_skipped) == 1 and int(state.num_evals) == 1

    def test_missing_metric_raises(self):
        with pytest.raises(ValueError, match="available validation metrics"):
            feed_eval_results(PlateauConfig(metric="wer"), init_plateau_state(self.CFG),
                              [eval_entry(1, 3.0)])
