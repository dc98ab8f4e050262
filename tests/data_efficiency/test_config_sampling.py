"""The data_sampling block and dynamic_batching (spec §1.1)."""

import re

import pytest

from algoperf_reinit.data_efficiency import (
    DataEfficiencyConfig,
    DataSamplingConfig,
    DynamicBatchingConfig,
    parse_data_efficiency_config,
)

DS = "data_efficiency.data_sampling"
DB = f"{DS}.dynamic_batching"


def raises(exc, text):
    return pytest.raises(exc, match="^" + re.escape(text))


class TestDataSampling:
    def test_values(self):
        ds = parse_data_efficiency_config({"data_sampling": {
            "num_epochs": 3, "num_workers": 2, "pin_memory": True}}).data_sampling
        assert (ds.num_epochs, ds.num_workers, ds.pin_memory) == (3, 2, True)

    @pytest.mark.parametrize(("key", "value", "exc", "text"), [
        ("num_epochs", 0, ValueError, "must be an int >= 1, got 0"),
        ("num_epochs", -1, ValueError, "must be an int >= 1, got -1"),
        ("num_epochs", 1.5, TypeError, "must be an int, got 1.5 of type float"),
        ("num_workers", -1, ValueError, "must be an int >= 0, got -1"),
        ("num_workers", "2", TypeError, "must be an int, got '2' of type str"),
        ("pin_memory", "false", TypeError, "must be a bool (True or False), got 'false'"),
        ("enabled", None, TypeError, "must be a bool (True or False), got None"),
    ])
    def test_invalid(self, key, value, exc, text):
        with raises(exc, f"{DS}.{key} {text}"):
            parse_data_efficiency_config({"data_sampling": {key: value}})

    def test_not_a_dict(self):
        with raises(TypeError, f"{DS} must be a dict (a JSON object), got [] of type list"):
            parse_data_efficiency_config({"data_sampling": []})

    def test_unknown_keys_are_copied_through(self):
        with pytest.warns(UserWarning, match=re.escape(f"{DS}.my_key is not a known key")):
            ds = parse_data_efficiency_config({"data_sampling": {"my_key": [1, 2]}}).data_sampling
        assert ds.extra == {"my_key": [1, 2]}
        assert ds.to_dict()["my_key"] == [1, 2]

    @pytest.mark.parametrize(("key", "value", "exc", "text"), [
        ("seed", -1, ValueError, "data_efficiency.seed must be an int >= 0, got -1; numpy"),
        ("seed", 1.0, TypeError, "data_efficiency.seed must be an int, got 1.0 of type float"),
        ("enabled", "true", TypeError, "data_efficiency.enabled must be a bool"),
    ])
    def test_top_level(self, key, value, exc, text):
        with raises(exc, text):
            parse_data_efficiency_config({key: value})

    def test_direct_construction(self):
        ds = DataSamplingConfig(num_epochs=2, curriculum_learning={"enabled": False})
        assert DataEfficiencyConfig(data_sampling=ds).data_sampling.num_epochs == 2
        with raises(TypeError, f"{DS}.dynamic_batching must be an instance of DynamicBatchingConfig"):
            DataSamplingConfig(dynamic_batching=3)


class TestDynamicBatching:
    def test_disabled_is_parsed_and_validated(self):
        db = parse_data_efficiency_config({"data_sampling": {"dynamic_batching": {
            "lr_scaling_method": "sqrt", "min_batch_size": 2, "max_batch_size": 64,
            "sequence_picking_order": "seqlen", "max_tokens": 4096, "verbose": True}}}
        ).data_sampling.dynamic_batching
        assert db == DynamicBatchingConfig(lr_scaling_method="sqrt", min_batch_size=2,
                                           max_batch_size=64, sequence_picking_order="seqlen",
                                           max_tokens=4096, verbose=True)
        assert parse_data_efficiency_config({"data_sampling": {"dynamic_batching": db.to_dict()}}
                                            ).data_sampling.dynamic_batching == db

    def test_enabled_is_not_supported_yet(self):
        with raises(ValueError, f"{DB}.enabled must be false, got True; dynamic batching "
                                "(variable batch size with LR scaling) is not supported yet"):
            parse_data_efficiency_config({"data_sampling": {"dynamic_batching": {
                "enabled": True, "max_tokens": 4096}}})

    def test_enabled_without_max_tokens(self):
        # DeepSpeed: AssertionError at config parse.
        with raises(ValueError, f"{DB}.max_tokens must be given when dynamic batching is "
                                "enabled, got <missing>"):
            parse_data_efficiency_config({"data_sampling": {"dynamic_batching": {"enabled": True}}})

    @pytest.mark.parametrize(("key", "value", "exc", "text"), [
        ("lr_scaling_method", "squareroot", ValueError,
         "must be one of 'linear', 'sqrt', 'none', got 'squareroot'"),
        ("sequence_picking_order", "sorted", ValueError,
         "must be one of 'random', 'seqlen', 'dataloader', got 'sorted'"),
        ("min_batch_size", 0, ValueError, "must be an int >= 1, got 0"),
        ("max_batch_size", 0, ValueError, "must be an int >= 1, got 0"),
        ("max_tokens", -5, ValueError, "must be an int >= 1, got -5"),
        ("verbose", 1, TypeError, "must be a bool (True or False), got 1 of type int"),
    ])
    def test_invalid(self, key, value, exc, text):
        with raises(exc, f"{DB}.{key} {text}"):
            parse_data_efficiency_config({"data_sampling": {"dynamic_batching": {key: value}}})

    def test_max_below_min(self):
        with raises(ValueError, f"{DB}.max_batch_size must be an int >= 8, got 4; it bounds"):
            parse_data_efficiency_config({"data_sampling": {"dynamic_batching": {
                "min_batch_size": 8, "max_batch_size": 4}}})

    def test_unknown_keys_are_kept(self):
        with pytest.warns(UserWarning, match=re.escape(
                f"{DB}.max_token is not a known key (did you mean 'max_tokens'?)")):
            db = parse_data_efficiency_config({"data_sampling": {"dynamic_batching": {
                "max_token": 5}}}).data_sampling.dynamic_batching
        assert db.to_dict()["max_token"] == 5
