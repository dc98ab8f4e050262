"""The data_routing / random_ltd block: every invalid configuration, by key path (spec §1.1, §4)."""

import copy
import re

import pytest

from algoperf_reinit.data_efficiency import (
    LayerTokenLRScheduleConfig,
    RandomLTDConfig,
    RandomLTDSchedule,
    RandomLTDScheduleConfig,
    parse_data_efficiency_config,
)

LTD = "data_efficiency.data_routing.random_ltd"


def config(**ltd):
    block = {"enabled": True, "total_layer_num": 12, "random_ltd_layer_num": 10,
             "random_ltd_layer_id": list(range(1, 11)), "model_mask_name": None,
             "model_type": "decoder", "hidden_state_order": "batch_seq_dim",
             "random_ltd_schedule": {"min_value": 32, "max_value": 197,
                                     "schedule_type": "fixed_linear",
                                     "schedule_config": {"require_steps": 3910,
                                                         "seq_per_step": 8}}}
    block.update(ltd)
    return {"data_routing": {"random_ltd": block}}


def schedule(**changes):
    sched = copy.deepcopy(config()["data_routing"]["random_ltd"]["random_ltd_schedule"])
    for key, value in changes.items():
        if key in ("require_steps", "seq_per_step"):
            sched["schedule_config"][key] = value
        else:
            sched[key] = value
    return sched


def raises(exc, text):
    return pytest.raises(exc, match="^" + re.escape(text))


class TestValid:
    def test_vit_example(self):
        ltd = parse_data_efficiency_config(config()).random_ltd
        assert ltd.random_ltd_layer_id == tuple(range(1, 11))
        assert ltd.random_ltd_schedule == RandomLTDSchedule(
            min_value=32, max_value=197,
            schedule_config=RandomLTDScheduleConfig(require_steps=3910, seq_per_step=8))
        assert ltd.layer_token_lr_schedule == LayerTokenLRScheduleConfig()

    def test_layer_ids_are_sorted_as_deepspeed_sorts_them(self):
        ltd = parse_data_efficiency_config(config(random_ltd_layer_id=[5, 1, 3],
                                                  random_ltd_layer_num=3)).random_ltd
        assert ltd.random_ltd_layer_id == (1, 3, 5)

    def test_the_schedule_needs_only_its_keys(self):
        block = config()["data_routing"]["random_ltd"]
        for key in ("random_ltd_layer_id", "model_mask_name", "model_type", "hidden_state_order"):
            del block[key]
        ltd = parse_data_efficiency_config({"data_routing": {"random_ltd": block}}).random_ltd
        assert (ltd.random_ltd_layer_id, ltd.model_type, ltd.hidden_state_order) == (None,) * 3

    def test_round_trip(self):
        cfg = parse_data_efficiency_config(config(
            global_batch_size=32, micro_batch_size=8,
            layer_token_lr_schedule={"enabled": True, "total_layer_tokens": 10**9,
                                     "warmup_layer_tokens": 10**7}))
        assert parse_data_efficiency_config(cfg.to_dict()) == cfg

    def test_encoder_seq_batch_dim(self):
        ltd = parse_data_efficiency_config(config(model_type="encoder",
                                                  hidden_state_order="seq_batch_dim",
                                                  model_mask_name="attention_mask")).random_ltd
        assert (ltd.model_type, ltd.hidden_state_order, ltd.model_mask_name) == (
            "encoder", "seq_batch_dim", "attention_mask")


class TestRequired:
    @pytest.mark.parametrize("key", ["total_layer_num", "random_ltd_layer_num",
                                     "random_ltd_schedule"])
    def test_when_enabled(self, key):
        # DeepSpeed: KeyError('total_layer_num') when its scheduler is built.
        cfg = config()
        del cfg["data_routing"]["random_ltd"][key]
        with raises(ValueError, f"{LTD}.{key} must be given when random_ltd is enabled, got <missing>"):
            parse_data_efficiency_config(cfg)

    @pytest.mark.parametrize("key", ["min_value", "max_value", "schedule_type", "schedule_config"])
    def test_schedule_keys(self, key):
        sched = schedule()
        del sched[key]
        with raises(ValueError, f"{LTD}.random_ltd_schedule.{key} must be given for random_ltd_schedule"):
            parse_data_efficiency_config(config(random_ltd_schedule=sched))

    @pytest.mark.parametrize("key", ["require_steps", "seq_per_step"])
    def test_schedule_config_keys(self, key):
        sched = schedule()
        del sched["schedule_config"][key]
        with raises(ValueError, f"{LTD}.random_ltd_schedule.schedule_config.{key} must be given "
                                "for random-LTD's fixed_linear schedule, got <missing>"):
            parse_data_efficiency_config(config(random_ltd_schedule=sched))


class TestInvalid:
    def test_unsupported_schedule_type_at_construction(self):
        # DeepSpeed: RuntimeError("Unsupported random LTD schedule type") at the first update.
        with raises(ValueError, f"{LTD}.random_ltd_schedule.schedule_type must be one of "
                                "'fixed_linear', got 'fixed_root'"):
            parse_data_efficiency_config(config(random_ltd_schedule=schedule(schedule_type="fixed_root")))

    def test_layer_num_disagrees_with_the_ids(self):
        # DeepSpeed: ValueError("random_ltd_layer_num ... must be equivalent to the len of
        # random_ltd_layer_id ...") when the model is converted.
        with raises(ValueError, f"{LTD}.random_ltd_layer_num must be len(random_ltd_layer_id) = 10, "
                                "got 9; list one layer id per random-LTD layer"):
            parse_data_efficiency_config(config(random_ltd_layer_num=9))

    @pytest.mark.parametrize(("ids", "exc", "text"), [
        ([1, 1, 2], ValueError, "random_ltd_layer_id must be a list of distinct layer ids, got [1, 1, 2]"),
        ([1, 12, 2], ValueError, "random_ltd_layer_id[1] must be an int <= 11, got 12; layer ids count"),
        ([-1, 2, 3], ValueError, "random_ltd_layer_id[0] must be an int >= 0, got -1"),
        ([1.0, 2, 3], TypeError, "random_ltd_layer_id[0] must be an int, got 1.0"),
        ("1,2,3", TypeError, "random_ltd_layer_id must be a list of ints, got '1,2,3'"),
    ])
    def test_layer_ids(self, ids, exc, text):
        with raises(exc, f"{LTD}.{text}"):
            parse_data_efficiency_config(config(random_ltd_layer_id=ids, random_ltd_layer_num=3))

    @pytest.mark.parametrize(("key", "value", "exc", "text"), [
        ("total_layer_num", 0, ValueError, "must be an int >= 1, got 0"),
        ("total_layer_num", "12", TypeError, "must be an int, got '12' of type str"),
        ("random_ltd_layer_num", 13, ValueError, "must be an int in [0, 12], got 13"),
        ("random_ltd_layer_num", -1, ValueError, "must be an int in [0, 12], got -1"),
        ("global_batch_size", 0, ValueError, "must be an int >= 1, got 0"),
        ("micro_batch_size", 2.5, TypeError, "must be an int, got 2.5 of type float"),
        ("model_mask_name", 3, TypeError, "must be a keyword name (a string) or null, got 3"),
        ("model_type", "decodr", ValueError,
         "must be one of 'decoder', 'encoder', got 'decodr'; did you mean 'decoder'?"),
        ("hidden_state_order", "batch_first", ValueError,
         "must be one of 'batch_seq_dim', 'seq_batch_dim', got 'batch_first'"),
    ])
    def test_values(self, key, value, exc, text):
        # model_type / hidden_state_order: DeepSpeed's NotImplementedError at conversion.
        changes = {key: value}
        if key == "random_ltd_layer_num":
            changes["random_ltd_layer_id"] = None
        with raises(exc, f"{LTD}.{key} {text}"):
            parse_data_efficiency_config(config(**changes))

    @pytest.mark.parametrize(("changes", "exc", "text"), [
        ({"min_value": -1}, ValueError, "min_value must be an int >= 0, got -1"),
        ({"max_value": 16}, ValueError,
         "max_value must be an int >= 32, got 16; max_value is the full length, >= min_value"),
        ({"min_value": 0, "max_value": 0}, ValueError, "max_value must be an int >= 1, got 0"),
        ({"require_steps": 0}, ValueError, "schedule_config.require_steps must be an int >= 1, got 0"),
        ({"seq_per_step": -8}, ValueError, "schedule_config.seq_per_step must be an int >= 1, got -8"),
        ({"seq_per_step": float("nan")}, TypeError, "schedule_config.seq_per_step must be an int, got nan"),
        ({"schedule_type": None}, TypeError, "schedule_type must be one of 'fixed_linear', got None"),
    ])
    def test_schedule_values(self, changes, exc, text):
        with raises(exc, f"{LTD}.random_ltd_schedule.{text}"):
            parse_data_efficiency_config(config(random_ltd_schedule=schedule(**changes)))

    def test_min_value_zero_is_allowed(self):
        # DeepSpeed can schedule 0 kept tokens itself (no lower clamp).
        parse_data_efficiency_config(config(random_ltd_schedule=schedule(min_value=0)))


class TestLayerTokenLRSchedule:
    def test_enabled_is_parsed(self):
        # DeepSpeed raises NotImplementedError; ours is implemented on the token counts.
        lr = parse_data_efficiency_config(config(layer_token_lr_schedule={
            "enabled": True, "total_layer_tokens": 1000, "warmup_type": "linear",
            "warmup_layer_tokens": 100})).random_ltd.layer_token_lr_schedule
        assert (lr.enabled, lr.total_layer_tokens, lr.warmup_type, lr.warmup_layer_tokens) == (
            True, 1000, "linear", 100)

    def test_defaults_when_enabled(self):
        lr = parse_data_efficiency_config(config(layer_token_lr_schedule={
            "enabled": True, "total_layer_tokens": 1000})).random_ltd.layer_token_lr_schedule
        assert (lr.warmup_type, lr.warmup_layer_tokens) == ("linear", 0)

    def test_block_without_enabled(self):
        # DeepSpeed: the user block replaces the default, then KeyError('enabled').
        with raises(ValueError, f"{LTD}.layer_token_lr_schedule.enabled must be given when a "
                                "layer_token_lr_schedule block is given, got <missing>"):
            parse_data_efficiency_config(config(layer_token_lr_schedule={"total_layer_tokens": 1}))

    @pytest.mark.parametrize(("block", "exc", "text"), [
        ({"enabled": True}, ValueError, "total_layer_tokens must be given when "
                                        "layer_token_lr_schedule is enabled"),
        ({"enabled": True, "total_layer_tokens": 0}, ValueError,
         "total_layer_tokens must be an int >= 1, got 0"),
        ({"enabled": True, "total_layer_tokens": 10, "warmup_layer_tokens": 11}, ValueError,
         "warmup_layer_tokens must be an int in [0, 10], got 11"),
        ({"enabled": True, "total_layer_tokens": 10, "warmup_type": "cosine"}, ValueError,
         "warmup_type must be one of 'linear', got 'cosine'"),
        ({"enabled": "yes"}, TypeError, "enabled must be a bool (True or False), got 'yes'"),
    ])
    def test_invalid(self, block, exc, text):
        with raises(exc, f"{LTD}.layer_token_lr_schedule.{text}"):
            parse_data_efficiency_config(config(layer_token_lr_schedule=block))

    def test_disabled_drops_its_keys(self):
        lr = parse_data_efficiency_config(config(layer_token_lr_schedule={
            "enabled": False, "total_layer_tokens": -5})).random_ltd.layer_token_lr_schedule
        assert lr == LayerTokenLRScheduleConfig()


class TestObjects:
    def test_disabled_construction_drops_everything(self):
        assert RandomLTDConfig(enabled=False, total_layer_num=3) == RandomLTDConfig()

    def test_direct_construction_is_validated(self):
        with raises(ValueError, f"{LTD}.total_layer_num must be given when random_ltd is enabled"):
            RandomLTDConfig(enabled=True)

    def test_sub_blocks_as_dicts_or_objects(self):
        sched = schedule()
        a = RandomLTDConfig(enabled=True, total_layer_num=12, random_ltd_layer_num=10,
                            random_ltd_schedule=sched)
        b = RandomLTDConfig(enabled=True, total_layer_num=12, random_ltd_layer_num=10,
                            random_ltd_schedule=RandomLTDSchedule(
                                min_value=32, max_value=197,
                                schedule_config={"require_steps": 3910, "seq_per_step": 8}))
        assert a == b

    def test_wrong_sub_block_kind(self):
        with raises(TypeError, f"{LTD}.random_ltd_schedule must be a dict (a JSON object), got 5"):
            parse_data_efficiency_config(config(random_ltd_schedule=5))
