"""parse_data_efficiency_config: inputs, defaults, leaf switches, round trip (spec §1.1, §8.2)."""

import ast
import copy
import doctest
import importlib
import json
import pathlib
import pickle
import re
import warnings

import pytest

import algoperf_reinit.data_efficiency as de
from algoperf_reinit.data_efficiency import (
    DataEfficiencyConfig,
    FrozenMapping,
    parse_data_efficiency_config,
)

# The example of DeepSpeed's docs (config-json.md, "Data Efficiency"), as published.
DOCUMENTED_EXAMPLE = {
    "enabled": True,
    "seed": 1234,
    "data_routing": {
        "enabled": True,
        "random_ltd": {
            "enabled": True,
            "total_layer_num": 24,
            "random_ltd_layer_num": 22,
            "random_ltd_layer_id": list(range(1, 23)),
            "model_mask_name": "attention_mask",
            "model_type": "decoder",
            "hidden_state_order": "seq_batch_dim",
            "random_ltd_schedule": {
                "min_value": 128, "max_value": 2048, "schedule_type": "fixed_linear",
                "schedule_config": {"require_steps": 200000, "seq_per_step": 16}},
        },
    },
    "data_sampling": {
        "enabled": True,
        "num_epochs": 1,
        "num_workers": 0,
        "curriculum_learning": {
            "enabled": True,
            "data_cluster_path": "/path/to/data_clusters",
            "curriculum_metrics": {
                "vocabularyrarity": {
                    "index_to_sample_path": "/path/to/index_to_sample",
                    "index_to_metric_path": "/path/to/index_to_metric",
                    "difficulty_type": "percentile",
                    "clustering_type": "schedule_based",
                    "min_difficulty": 1,
                    "max_difficulty": 100,
                    "schedule_type": "fixed_root",
                    "schedule_config": {"total_curriculum_step": 110000, "difficulty_step": 1,
                                        "root_degree": 2},
                },
            },
        },
    },
}


def parse_quietly(config, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse_data_efficiency_config(config, **kwargs)


def seqlen_metric(**extra):
    return {"index_to_sample_path": "dummy", "index_to_metric_path": "dummy",
            "difficulty_type": "value", "clustering_type": "single_cluster",
            "min_difficulty": 8, "max_difficulty": 64, "schedule_type": "fixed_linear",
            "schedule_config": {"total_curriculum_step": 10, "difficulty_step": 8}, **extra}


class TestDefaults:
    @pytest.mark.parametrize("config", [None, {}, {"data_efficiency": {}},
                                        {"train_batch_size": 8}])
    def test_empty_config(self, config):
        cfg = parse_data_efficiency_config(config)
        # DeepSpeed's defaults (spec §1.1), written out here rather than read back.
        assert (cfg.enabled, cfg.seed) == (False, 1234)
        ds = cfg.data_sampling
        assert (ds.enabled, ds.num_epochs, ds.num_workers, ds.pin_memory) == (False, 1000, 0, False)
        assert cfg.curriculum_learning.enabled is False
        assert cfg.curriculum_learning.curriculum_metrics == {}
        db = ds.dynamic_batching
        assert (db.enabled, db.lr_scaling_method, db.min_batch_size, db.max_batch_size,
                db.sequence_picking_order, db.max_tokens, db.verbose) == (
            False, "linear", 1, None, "dataloader", None, False)
        assert cfg.data_routing.enabled is False
        assert cfg.random_ltd.enabled is False
        assert cfg.random_ltd.layer_token_lr_schedule.enabled is False

    def test_defaults_are_named_constants(self):
        assert de.DATA_EFFICIENCY_SEED_DEFAULT == 1234
        assert de.DATA_SAMPLING_NUM_EPOCHS_DEFAULT == 1000
        assert de.DATA_SAMPLING_NUM_WORKERS_DEFAULT == 0
        assert de.DATA_SAMPLING_PIN_MEMORY_DEFAULT is False
        assert DataEfficiencyConfig() == parse_data_efficiency_config({})

    def test_empty_config_normalises_like_deepspeed(self):
        # Disabled leaf blocks: DeepSpeed's normalised forms (spec §1.1).
        out = parse_data_efficiency_config({}).to_dict()
        assert out["data_sampling"]["curriculum_learning"] == {"enabled": False}
        assert out["data_routing"]["random_ltd"] == {"enabled": False,
                                                     "layer_token_lr_schedule": {"enabled": False}}


class TestDocumentedExample:
    def test_values(self):
        with pytest.warns(UserWarning, match="difficulty_step is 1, not a multiple of 8"):
            cfg = parse_data_efficiency_config(DOCUMENTED_EXAMPLE)
        assert cfg.seed == 1234 and cfg.data_sampling.num_epochs == 1
        cl = cfg.curriculum_learning
        assert cl.enabled and cl.data_cluster_path == "/path/to/data_clusters"
        m = cl.curriculum_metrics["vocabularyrarity"]
        assert (m.difficulty_type, m.clustering_type, m.min_difficulty, m.max_difficulty,
                m.schedule_type) == ("percentile", "schedule_based", 1, 100, "fixed_root")
        assert (m.schedule_config.total_curriculum_step, m.schedule_config.difficulty_step,
                m.schedule_config.root_degree) == (110000, 1, 2)
        assert m.legacy_rounding is False
        ltd = cfg.random_ltd
        assert (ltd.total_layer_num, ltd.random_ltd_layer_num) == (24, 22)
        assert ltd.random_ltd_layer_id == tuple(range(1, 23))
        assert (ltd.model_mask_name, ltd.model_type, ltd.hidden_state_order) == (
            "attention_mask", "decoder", "seq_batch_dim")
        sched = ltd.random_ltd_schedule
        assert (sched.min_value, sched.max_value, sched.schedule_config.require_steps,
                sched.schedule_config.seq_per_step) == (128, 2048, 200000, 16)
        assert ltd.global_batch_size is None  # engine-injected; not in the block

    def test_round_trip(self):
        cfg = parse_quietly(DOCUMENTED_EXAMPLE)
        out = cfg.to_dict()
        json.dumps(out)
        assert parse_quietly(out) == cfg
        # Every key the user wrote comes back with its value.
        ltd = out["data_routing"]["random_ltd"]
        for key, value in DOCUMENTED_EXAMPLE["data_routing"]["random_ltd"].items():
            assert ltd[key] == value
        assert (out["data_sampling"]["curriculum_learning"]
                == DOCUMENTED_EXAMPLE["data_sampling"]["curriculum_learning"])

    def test_input_is_not_mutated(self):
        config = {"train_batch_size": 32, "data_efficiency": copy.deepcopy(DOCUMENTED_EXAMPLE),
                  "curriculum_learning": {"enabled": True, "curriculum_type": "seqlen",
                                          "min_difficulty": 8, "max_difficulty": 64,
                                          "schedule_type": "fixed_linear",
                                          "schedule_config": {"total_curriculum_step": 6,
                                                              "difficulty_step": 8}}}
        config["data_efficiency"]["data_sampling"]["unknown"] = {"nested": [1, 2]}
        before = copy.deepcopy(config)
        cfg = parse_quietly(config)
        assert config == before
        # Kept unknown values are copies, not the user's objects.
        assert cfg.data_sampling.extra["unknown"] == {"nested": [1, 2]}
        assert cfg.data_sampling.extra["unknown"] is not config["data_efficiency"]["data_sampling"]["unknown"]

    def test_pickles(self):
        cfg = parse_quietly(DOCUMENTED_EXAMPLE)
        assert pickle.loads(pickle.dumps(cfg)) == cfg


class TestInputs:
    def test_whole_config_and_block_agree(self):
        block = parse_quietly(DOCUMENTED_EXAMPLE)
        whole = parse_quietly({"optimizer": {"type": "Adam"}, "data_efficiency": DOCUMENTED_EXAMPLE})
        assert block == whole

    @pytest.mark.parametrize("as_str", [True, False])
    def test_json_file(self, tmp_path, as_str):
        path = tmp_path / "ds_config.json"
        path.write_text(json.dumps({"train_batch_size": 8, "data_efficiency": DOCUMENTED_EXAMPLE}))
        cfg = parse_quietly(str(path) if as_str else path)
        assert cfg == parse_quietly({"train_batch_size": 8, "data_efficiency": DOCUMENTED_EXAMPLE})
        assert cfg.random_ltd.global_batch_size == 8
        assert cfg.curriculum_learning.curriculum_metrics["vocabularyrarity"].max_difficulty == 100

    def test_invalid_json_file(self, tmp_path):
        path = tmp_path / "bad.json"
        path.write_text("{not json")
        with pytest.raises(ValueError, match=re.escape(f"{path} must be a JSON file, got invalid JSON")):
            parse_data_efficiency_config(path)

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            parse_data_efficiency_config(tmp_path / "absent.json")

    def test_json_file_holding_a_list(self, tmp_path):
        path = tmp_path / "list.json"
        path.write_text("[1, 2]")
        with pytest.raises(TypeError, match=r"config must be a data_efficiency dict, a whole DeepSpeed"):
            parse_data_efficiency_config(path)

    @pytest.mark.parametrize("config", [3, [("seed", 1)], b"{}"])
    def test_wrong_kind(self, config):
        with pytest.raises(TypeError, match="config must be a data_efficiency dict"):
            parse_data_efficiency_config(config)

    def test_data_efficiency_not_a_dict(self):
        with pytest.raises(TypeError, match=r"^data_efficiency must be a dict \(a JSON object\), got None"):
            parse_data_efficiency_config({"data_efficiency": None})

    def test_a_parsed_config_is_returned_as_is(self):
        cfg = parse_data_efficiency_config({"seed": 3})
        assert parse_data_efficiency_config(cfg) is cfg

    def test_block_keys_at_the_top_of_a_whole_config_warn(self):
        with pytest.warns(UserWarning, match=re.escape(
                "seed is not read at the top level of a DeepSpeed config (did you mean "
                "data_efficiency.seed?); ignored")):
            cfg = parse_data_efficiency_config({"train_batch_size": 4, "seed": 7})
        assert cfg.seed == 1234


class TestLeafSwitches:
    def test_parent_flags_are_independent(self):
        # Recorded case parse_flags_are_independent: leaves on, every parent off.
        config = copy.deepcopy(DOCUMENTED_EXAMPLE)
        config["enabled"] = False
        config["data_sampling"]["enabled"] = False
        config["data_routing"]["enabled"] = False
        cfg = parse_quietly(config)
        assert cfg.curriculum_learning.enabled and cfg.random_ltd.enabled
        assert not (cfg.enabled or cfg.data_sampling.enabled or cfg.data_routing.enabled)

    def test_disabled_leaves_drop_their_keys_unvalidated(self):
        config = copy.deepcopy(DOCUMENTED_EXAMPLE)
        cl = config["data_sampling"]["curriculum_learning"]
        cl["enabled"] = False
        cl["curriculum_metrics"]["vocabularyrarity"]["min_difficulty"] = "not checked"
        config["data_routing"]["random_ltd"]["enabled"] = False
        config["data_routing"]["random_ltd"]["total_layer_num"] = -1
        cfg = parse_data_efficiency_config(config)
        assert cfg.curriculum_learning == de.CurriculumLearningConfig()
        assert cfg.random_ltd == de.RandomLTDConfig()
        assert cfg.to_dict()["data_sampling"]["curriculum_learning"] == {"enabled": False}

    def test_direct_construction_of_a_disabled_leaf_drops_too(self):
        cl = de.CurriculumLearningConfig(enabled=False, data_cluster_path="/x")
        assert cl.data_cluster_path is None

    @pytest.mark.parametrize("path", [["enabled"], ["data_sampling", "enabled"],
                                      ["data_sampling", "curriculum_learning", "enabled"],
                                      ["data_routing", "random_ltd", "enabled"]])
    def test_switches_must_be_bools(self, path):
        config = copy.deepcopy(DOCUMENTED_EXAMPLE)
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = 1
        with pytest.raises(TypeError, match=re.escape(
                f"data_efficiency.{'.'.join(path)} must be a bool (True or False), got 1 of type int")):
            parse_quietly(config)


class TestUnknownKeys:
    @pytest.mark.parametrize(("where", "key", "suggestion", "fate"), [
        ([], "sed", "seed", "ignored"),
        (["data_routing"], "random_lt", "random_ltd", "ignored"),
        (["data_sampling"], "num_epoch", "num_epochs", "kept"),
        (["data_sampling", "curriculum_learning"], "data_cluster_pth", "data_cluster_path", "kept"),
        (["data_sampling", "curriculum_learning", "curriculum_metrics", "vocabularyrarity"],
         "difficulty_typ", "difficulty_type", "kept"),
        (["data_sampling", "curriculum_learning", "curriculum_metrics", "vocabularyrarity",
          "schedule_config"], "root_degre", "root_degree", "kept"),
        (["data_routing", "random_ltd"], "model_mask", "model_mask_name", "kept"),
        (["data_routing", "random_ltd", "random_ltd_schedule"], "max_valu", "max_value", "kept"),
        (["data_routing", "random_ltd", "random_ltd_schedule", "schedule_config"],
         "seq_per_steps", "seq_per_step", "kept"),
    ])
    def test_warned_with_the_closest_key(self, where, key, suggestion, fate):
        config = copy.deepcopy(DOCUMENTED_EXAMPLE)
        node = config
        for name in where:
            node = node[name]
        node[key] = 5
        path = ".".join(["data_efficiency", *where, key])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cfg = parse_data_efficiency_config(config)
        texts = [str(w.message) for w in caught if "not a known key" in str(w.message)]
        outcome = {"kept": "kept, as DeepSpeed keeps it, but nothing reads it",
                   "ignored": "ignored, as DeepSpeed ignores it"}[fate]
        assert texts == [f"{path} is not a known key (did you mean {suggestion!r}?); {outcome}"]
        assert caught[0].filename == __file__  # attributed to the caller
        out = cfg.to_dict()
        for name in where:
            out = out[name]
        assert (key in out) == (fate == "kept")
        assert parse_quietly(cfg.to_dict()) == cfg

    def test_no_close_key(self):
        with pytest.warns(UserWarning, match=re.escape(
                "data_efficiency.data_sampling.zzz is not a known key (no valid key is close)")):
            parse_data_efficiency_config({"data_sampling": {"zzz": 1}})


class TestBatchSizeInjection:
    def ltd_block(self, **extra):
        return {"data_routing": {"random_ltd": {
            "enabled": True, "total_layer_num": 4, "random_ltd_layer_num": 2,
            "random_ltd_schedule": {"min_value": 16, "max_value": 64,
                                    "schedule_type": "fixed_linear",
                                    "schedule_config": {"require_steps": 6, "seq_per_step": 8}},
            **extra}}}

    def test_injected_from_the_whole_config(self):
        cfg = parse_data_efficiency_config({"train_batch_size": 4, "train_micro_batch_size_per_gpu": 2,
                                            "data_efficiency": self.ltd_block()})
        assert (cfg.random_ltd.global_batch_size, cfg.random_ltd.micro_batch_size) == (4, 2)

    def test_engine_injected_keys_are_accepted_in_the_block(self):
        cfg = parse_data_efficiency_config(self.ltd_block(global_batch_size=4, micro_batch_size=2))
        assert (cfg.random_ltd.global_batch_size, cfg.random_ltd.micro_batch_size) == (4, 2)

    def test_disagreement_is_an_error(self):
        with pytest.raises(ValueError, match=re.escape(
                "data_efficiency.data_routing.random_ltd.global_batch_size must be "
                "train_batch_size = 8, got 4; DeepSpeed's engine overwrites it")):
            parse_data_efficiency_config({"train_batch_size": 8,
                                          "data_efficiency": self.ltd_block(global_batch_size=4)})

    def test_invalid_train_batch_size(self):
        with pytest.raises(ValueError, match="train_batch_size must be an int >= 1, got 0"):
            parse_data_efficiency_config({"train_batch_size": 0, "data_efficiency": self.ltd_block()})


HOST_MODULES = ("_config", "_config_common", "_config_curriculum", "_config_ltd",
                "_config_metric", "_config_routing", "_config_sampling", "_legacy",
                "_difficulty", "_curriculum_scheduler", "_ltd_scheduler")


class TestPackage:
    def test_public_names(self):
        assert len(de.__all__) == len(set(de.__all__))
        assert [n for n in de.__all__ if not hasattr(de, n)] == []

    @pytest.mark.parametrize("name", HOST_MODULES)
    def test_host_modules_do_not_import_jax(self, name):
        source = (pathlib.Path(de.__file__).parent / f"{name}.py").read_text()
        tree = ast.parse(source)
        imported = {a.name.split(".")[0] for n in ast.walk(tree)
                    if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree)
                     if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & {"jax", "jaxlib", "flax", "optax", "absl"}
        assert "os.environ" not in source

    @pytest.mark.parametrize("name", HOST_MODULES)
    def test_module_lists_all_and_its_examples_run(self, name):
        module = importlib.import_module(f"algoperf_reinit.data_efficiency.{name}")
        assert all(hasattr(module, n) for n in module.__all__)
        assert doctest.testmod(module).failed == 0

    def test_frozen(self):
        cfg = parse_data_efficiency_config({})
        with pytest.raises(AttributeError):
            cfg.seed = 3  # type: ignore[misc]
        assert isinstance(cfg.curriculum_learning.curriculum_metrics, FrozenMapping)
