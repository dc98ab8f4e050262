"""DeepSpeedDataSampler's error messages: arguments (DeepSpeed asserts), configuration,
the percentile N1 < max_difficulty case (DeepSpeed fails inside numpy), a first batch
with no eligible sample, custom schedules. One message format:
``<field> must be <rule>, got <value>[; <fix>]``.
"""

from __future__ import annotations

import itertools

import pytest

from algoperf_reinit.data_efficiency import DeepSpeedDataSampler
from tests.data_efficiency.test_sampler_reference import N, config, copy_analysis, metric

pytestmark = pytest.mark.filterwarnings("ignore:.*not a multiple of 8")
A_PATHS = {"index_to_sample_path": "analysis/a/a_index_to_sample",
           "index_to_metric_path": "analysis/a/a_index_to_metric"}
B_PATHS = {"index_to_sample_path": "analysis/b/b_index_to_sample",
           "index_to_metric_path": "analysis/b/b_index_to_metric"}
PATH = "data_efficiency.data_sampling.curriculum_learning"
SINGLE = config({"s": metric(clustering="single_cluster")}, cluster_path=None)


def build(*args, cfg=SINGLE, **kwargs):
    args = args or (10, 2, 0, 1, 1)
    return DeepSpeedDataSampler(cfg, *args, **kwargs)


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), [
    ((0, 2, 0, 1, 1), {}, ValueError, r"one_epoch_total_samples must be an int >= 1, got 0"),
    ((1.5, 2, 0, 1, 1), {}, TypeError,
     r"one_epoch_total_samples must be an int, got 1.5 of type float"),
    ((10, 0, 0, 1, 1), {}, ValueError, r"micro_batch_size must be an int >= 1, got 0"),
    ((10, 2, 0, 0, 1), {}, ValueError, r"data_parallel_size must be an int >= 1, got 0"),
    ((10, 2, 2, 2, 1), {}, ValueError, r"data_parallel_rank must be an int in \[0, 1\], got 2"),
    ((10, 2, -1, 2, 1), {}, ValueError, r"data_parallel_rank must be an int in \[0, 1\], got -1"),
    ((10, 2, 0, 1, 0), {}, ValueError,
     r"gradient_accumulation_steps must be an int >= 1, got 0"),
    ((10, 2, 0, 1, 1, "yes"), {}, TypeError, r"drop_last must be a bool"),
    ((), {"write_clusters": 1}, TypeError, r"write_clusters must be a bool"),
    ((), {"compat_resume_bug": None}, TypeError, r"compat_resume_bug must be a bool"),
    ((), {"wrap_small_clusters": "no"}, TypeError, r"wrap_small_clusters must be a bool"),
    ((), {"empty_selection_is_empty": 0}, TypeError,
     r"empty_selection_is_empty must be a bool"),
])
def test_argument_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        build(*args, **kwargs)


def test_curriculum_must_be_enabled():
    with pytest.raises(ValueError, match=rf"{PATH}.enabled must be true for the curriculum "
                                         r"sampler, got False; without a curriculum"):
        build(cfg={})


def test_configuration_errors_name_the_key_path():
    cfg = config({"s": metric(clustering="single_cluster", step=0)}, cluster_path=None)
    with pytest.raises(ValueError, match=rf"{PATH}.curriculum_metrics.s.schedule_config."
                                         r"difficulty_step must be an int >= 1, got 0"):
        build(cfg=cfg)


def test_missing_index_file(tmp_path):
    cfg = config({"a": metric(paths={"index_to_sample_path": "nope/a",
                                     "index_to_metric_path": "nope/m"})})
    with pytest.raises(FileNotFoundError, match=r"nope/a.idx does not exist"):
        build(N, 4, 0, 1, 2, cfg=cfg, base_path=tmp_path)


class TestPercentileWithFewerSamplesThanPercentiles:
    def test_error_at_construction_naming_the_metric_and_n1(self, tmp_path):
        copy_analysis(tmp_path)
        cfg = config({"b": metric("percentile", lo=10, hi=100, paths=B_PATHS)})
        with pytest.raises(ValueError, match=rf"{PATH}.curriculum_metrics.b.max_difficulty "
                                             r"must be <= N1 = 64, the number of ids in the "
                                             r"first percentile metric's index_to_sample, "
                                             r"got 100; with fewer ids than percentiles"):
            build(N, 4, 0, 1, 2, cfg=cfg, base_path=tmp_path)

    def test_no_error_when_min_is_max(self, tmp_path):
        # Every id from the first batch on: DeepSpeed does not fail either.
        copy_analysis(tmp_path)
        cfg = config({"b": metric("percentile", lo=100, hi=100, paths=B_PATHS)})
        sampler = build(N, 4, 0, 1, 2, cfg=cfg, base_path=tmp_path)
        assert sorted(sampler.get_next_global_batch().tolist()) != []
        assert sampler.data_cluster_sizes == [N]


def test_no_eligible_sample_at_the_first_batch(tmp_path):
    copy_analysis(tmp_path)
    cfg = config({"a": metric(lo=0, hi=64, paths=A_PATHS)})  # a(i) >= 8 for every i
    sampler = build(N, 4, 0, 1, 2, cfg=cfg, base_path=tmp_path)
    with pytest.raises(ValueError, match=r"eligible samples at curriculum step 1 "
                                         r"\(difficulties \{'a': 0\}\) must be >= 1, got 0; "
                                         r"no id of the index files lies within"):
        next(iter(sampler))


class TestCustomSchedules:
    def custom(self, tmp_path, kind="value", paths=A_PATHS, hi=64):
        copy_analysis(tmp_path)
        m = metric(kind, lo=0, hi=hi, schedule_type="custom", paths=paths)
        del m["schedule_config"]
        return build(N, 4, 0, 1, 2, cfg=config({"m": m}), base_path=tmp_path)

    def test_unknown_metric_name(self, tmp_path):
        with pytest.raises(ValueError, match=r"set_custom_curriculum_learning_schedule key "
                                             r"must be one of 'm', got 'n'"):
            self.custom(tmp_path).set_custom_curriculum_learning_schedule({"n": abs})

    def test_metric_that_is_not_custom(self):
        with pytest.raises(ValueError, match=r"schedule_type must be 'custom' to take a "
                                             r"custom difficulty function"):
            build().set_custom_curriculum_learning_schedule({"s": abs})

    def test_function_not_installed(self, tmp_path):
        with pytest.raises(ValueError, match=r"custom difficulty function must be installed"):
            next(iter(self.custom(tmp_path)))

    @pytest.mark.parametrize(("value", "error", "match"), [
        (17, ValueError, r"m difficulty at curriculum step 1 must be an int in \[0, 16\], "
                         r"got 17"),
        (2.5, TypeError, r"m difficulty at curriculum step 1 must be an int, got 2.5"),
    ])
    def test_percentile_difficulty_out_of_range(self, tmp_path, value, error, match):
        sampler = self.custom(tmp_path, "percentile", B_PATHS, hi=16)
        sampler.set_custom_curriculum_learning_schedule({"m": lambda step: value})
        with pytest.raises(error, match=match):
            list(itertools.islice(iter(sampler), 1))
