"""RandomLTDScheduler against the spec (§4.2, §5) and its recorded engine run."""

import copy
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algoperf_reinit.data_efficiency import (
    RandomLTDScheduler,
    RandomLTDState,
    parse_data_efficiency_config,
)
from tests.data_efficiency.test_difficulty import spec_fixed_root

LTD = re.escape("data_efficiency.data_routing.random_ltd")


def ltd(lo=16, hi=64, steps=6, per=8, layers=4, n_ltd=2, batch=4, **extra):
    return {"total_layer_num": layers, "random_ltd_layer_num": n_ltd,
            "global_batch_size": batch,
            "random_ltd_schedule": {"min_value": lo, "max_value": hi,
                                    "schedule_type": "fixed_linear",
                                    "schedule_config": {"require_steps": steps,
                                                        "seq_per_step": per}}, **extra}


def spec_tokens(batch, kept, hi, layers, n_ltd):
    """Spec §4.2: layer tokens of one optimizer step."""
    return batch * (kept * n_ltd + hi * (layers - n_ltd))


def spec_run(cfg, steps, clamp=False):
    """Spec §4.2 update_seq over a sequence of global steps: (values, consumed)."""
    sched = cfg["random_ltd_schedule"]
    lo, hi = sched["min_value"], sched["max_value"]
    total, per = sched["schedule_config"]["require_steps"], sched["schedule_config"]["seq_per_step"]
    current, last, consumed, values, counts = lo, -1, 0, [], []
    for step in steps:
        if current < hi:
            current = spec_fixed_root(step, lo, hi, total, per, 1, clamp)
        if step != last:
            consumed += spec_tokens(cfg["global_batch_size"], current, hi,
                                    cfg["total_layer_num"], cfg["random_ltd_layer_num"])
            last = step
        values.append(current)
        counts.append(consumed)
    return values, counts


class TestRecordedEngineRun:
    def test_reserved_lengths_and_layer_tokens(self):
        # Spec §5 (recorded, 0.19.5): train_batch 4, 4 layers / 2 LTD, LTD 16->64 / 6 / 8:
        # reserved 16, 24, 32, 40, 48, 56 and consumed 640, 1344, 2112, 2944, 3840, 4800
        # for global steps 0..5 (LTD uses global_steps, no +1).
        s = RandomLTDScheduler(ltd())
        reserved, consumed = [], []
        for g in range(6):
            reserved.append(s.update_seq(g))
            consumed.append(s.state.consumed_layer_tokens)
        assert reserved == [16, 24, 32, 40, 48, 56]
        assert consumed == [640, 1344, 2112, 2944, 3840, 4800]

    def test_gradient_accumulation_counts_each_step_once(self):
        # micro 2 x gas 2: two forwards (two update_seq calls) per optimizer step.
        s = RandomLTDScheduler(ltd())
        for g in range(6):
            s.update_seq(g)
            s.update_seq(g)
        assert s.state.consumed_layer_tokens == 4800

    def test_from_a_whole_deepspeed_config(self):
        # train_batch_size is injected as global_batch_size, as DeepSpeed's engine does.
        block = ltd()
        del block["global_batch_size"]
        cfg = parse_data_efficiency_config({"train_batch_size": 4, "data_efficiency": {
            "data_routing": {"random_ltd": {"enabled": True, **block}}}})
        s = RandomLTDScheduler(cfg.random_ltd)
        assert s.get_total_layer_tokens(6) == 4800


class TestValues:
    def test_vit_max_not_a_multiple(self):
        # Spec §4.2: ViT 32 -> 197, step 8, 3910 steps: 192 at 3958, 197 at 4000.
        s = RandomLTDScheduler(ltd(32, 197, 3910, 8, layers=12, n_ltd=10))
        assert s.get_value(3958) == 192
        assert s.get_value(4000) == 197

    @pytest.mark.parametrize(("clamp", "first"), [(False, 0), (True, 16)])
    def test_no_lower_clamp_by_default(self, clamp, first):
        # Spec: min 8, seq_per_step 16 keeps 0 tokens (every DeepSpeed version);
        # min_clamp=True lifts it to ceil(8/16)*16 = 16 (PR #8529).
        s = RandomLTDScheduler(ltd(8, 64, 10, 16), min_clamp=clamp)
        assert s.get_value(0) == first
        assert s.update_seq(0) == first

    def test_current_value_is_min_unrounded_before_the_first_update(self):
        s = RandomLTDScheduler(ltd(8, 64, 10, 16))
        assert s.get_current_seq() == 8
        assert s.state == RandomLTDState(current_value=8, current_steps=-1, consumed_layer_tokens=0)

    def test_sticky_at_max(self):
        s = RandomLTDScheduler(ltd())
        for g in range(10):
            s.update_seq(g)
        assert s.get_current_seq() == 64
        assert s.update_seq(0) == 64  # an earlier step does not bring it down

    def test_any_step_sequence_matches_the_spec(self):
        steps = [0, 0, 1, 3, 3, 2, 7, 5, 8, 8, 9]
        s = RandomLTDScheduler(ltd(8, 100, 9, 8))
        got = [(s.update_seq(t), s.state.consumed_layer_tokens) for t in steps]
        values, counts = spec_run(ltd(8, 100, 9, 8), steps)
        assert got == list(zip(values, counts, strict=True))


class TestTotalLayerTokens:
    def test_published_vit_value(self):
        # Spec §4.2: reproduces the published ViT CIFAR log value layer_token 305784192 at
        # iteration 5474 (12 layers, 10 LTD, 32 -> 197 / 3910 / 8; global batch 32).
        s = RandomLTDScheduler(ltd(32, 197, 3910, 8, layers=12, n_ltd=10, batch=32))
        assert s.get_total_layer_tokens(5474) == 305784192

    @pytest.mark.parametrize("n", [0, 1, 5, 6, 7, 40])
    def test_equals_a_fresh_run_and_does_not_mutate(self, n):
        s = RandomLTDScheduler(ltd())
        s.update_seq(0)
        before = s.state
        _, counts = spec_run(ltd(), range(n))
        assert s.get_total_layer_tokens(n) == (counts[-1] if counts else 0)
        assert s.state == before

    def test_negative_iterations(self):
        with pytest.raises(ValueError, match="train_iters must be an int >= 0, got -1"):
            RandomLTDScheduler(ltd()).get_total_layer_tokens(-1)


class TestState:
    def test_deepspeed_keys_and_round_trip(self):
        a = RandomLTDScheduler(ltd())
        for g in range(3):
            a.update_seq(g)
        saved = json.loads(json.dumps(a.state_dict()))
        assert saved == {"consumed_layer_tokens": 2112, "current_steps": 2, "current_value": 32,
                         "min_value": 16, "max_value": 64}
        b = RandomLTDScheduler(ltd())
        b.load_state_dict(saved)
        assert b.state == a.state
        assert [b.update_seq(g) for g in range(3, 8)] == [a.update_seq(g) for g in range(3, 8)]
        assert b.state == a.state

    def test_reset_to_init(self):
        s = RandomLTDScheduler(ltd())
        s.update_seq(4)
        s.reset_to_init()
        assert s.state == RandomLTDState(16, -1, 0)

    def test_checkpoint_of_another_schedule(self):
        saved = RandomLTDScheduler(ltd()).state_dict()
        with pytest.raises(ValueError, match=r"state_dict.max_value must be 128 as in this configuration, got 64"):
            RandomLTDScheduler(ltd(hi=128)).load_state_dict(saved)

    def test_missing_key(self):
        saved = RandomLTDScheduler(ltd()).state_dict()
        del saved["current_steps"]
        with pytest.raises(ValueError, match=r"state_dict\.current_steps must be given"):
            RandomLTDScheduler(ltd()).load_state_dict(saved)


class TestConstruction:
    def test_input_is_not_mutated(self):
        cfg = ltd()
        before = copy.deepcopy(cfg)
        RandomLTDScheduler(cfg)
        assert cfg == before

    def test_global_batch_size_is_required(self):
        cfg = ltd()
        del cfg["global_batch_size"]
        with pytest.raises(ValueError, match=(rf"^{LTD}.global_batch_size must be given to count "
                                              r"layer tokens, got <missing>; DeepSpeed's engine injects")):
            RandomLTDScheduler(cfg)

    def test_unsupported_schedule_type_at_construction(self):
        # DeepSpeed raises only at the first update_seq; we raise when building.
        cfg = ltd()
        cfg["random_ltd_schedule"]["schedule_type"] = "fixed_root"
        with pytest.raises(ValueError, match=(rf"{LTD}.random_ltd_schedule.schedule_type must be one "
                                              r"of 'fixed_linear', got 'fixed_root'")):
            RandomLTDScheduler(cfg)

    def test_total_layer_num_is_required(self):
        cfg = ltd()
        del cfg["total_layer_num"]
        with pytest.raises(ValueError, match=rf"{LTD}.total_layer_num must be given when random_ltd is enabled"):
            RandomLTDScheduler(cfg)

    def test_disabled_config(self):
        with pytest.raises(ValueError, match=rf"{LTD}.enabled must be true to build a RandomLTDScheduler"):
            RandomLTDScheduler(parse_data_efficiency_config({}).random_ltd)

    def test_layer_token_lr_schedule_enabled_is_accepted(self):
        # DeepSpeed raises NotImplementedError; the schedule is built on these counts.
        s = RandomLTDScheduler(ltd(layer_token_lr_schedule={"enabled": True,
                                                            "total_layer_tokens": 10_000}))
        assert s.config.layer_token_lr_schedule.total_layer_tokens == 10_000
        assert s.get_total_layer_tokens(6) == 4800


@given(st.integers(0, 300), st.integers(1, 500), st.integers(1, 400), st.integers(1, 32),
       st.booleans(), st.integers(1, 8), st.integers(0, 8), st.integers(1, 64),
       st.lists(st.integers(0, 600), max_size=25))
def test_properties(lo, span, steps, per, clamp, layers, n_ltd, batch, calls):
    hi, n_ltd = lo + span, min(n_ltd, layers)
    cfg = ltd(lo, hi, steps, per, layers=layers, n_ltd=n_ltd, batch=batch)
    s = RandomLTDScheduler(cfg, min_clamp=clamp)
    values, counts = spec_run(cfg, calls, clamp)
    for step, value, count in zip(calls, values, counts, strict=True):
        assert s.update_seq(step) == value
        assert s.state.consumed_layer_tokens == count
        assert 0 <= value <= hi
        assert value == hi or value % per == 0
    ordered = [s.get_value(t) for t in range(0, 2 * steps + per)]
    assert ordered == sorted(ordered)  # non-decreasing in the step
