"""Training through the sampler: analyzer -> clusters -> sampler -> device gather -> runner.

``stdlib_lm`` (tiny model) trains on a vocabulary-rarity curriculum: the analyzer maps
``total_vocab_freq`` then ``vocab_rarity`` over the workload's ``training_dataset()``,
``DeepSpeedDataSampler`` draws global batches of ids from the percentile clusters, and
``DeviceDataset`` gathers them. A run interrupted in step 101 (after its step-100
checkpoint) and resumed ends bit-identical to the uninterrupted 200-step run.
"""

import io
import json
import os

import jax
import numpy as np
import pytest
from algoperf_reinit_workloads import get_workload

from algoperf_reinit.data_efficiency import (
    DataAnalyzer,
    DeepSpeedDataSampler,
    DeviceDataset,
    MMapIndexedDataset,
    total_vocab_freq_metric,
    vocab_rarity_metric,
)
from algoperf_reinit.runner import SAMPLE_SOURCE_KEY, SampleSource, parse_flags, run
from algoperf_reinit.runner.checkpoint import find_checkpoints, load_checkpoint
from algoperf_reinit.runner.sample_source import open_sample_source
from tests.runner.conftest import submission

TINY = ('{"seq_len": 32, "width": 32, "num_layers": 1, "num_heads": 2, "mlp_dim": 64, '
        '"num_eval_train_examples": 64}')
STEPS, HALF = 200, 100
# A percentile difficulty_step of 1 is not a length: DeepSpeed's multiple-of-8 warning.
pytestmark = pytest.mark.filterwarnings("ignore:.*difficulty_step is 1:UserWarning")


def analyze(dataset, save_path):
    """The two analyzer passes: token counts, then each window's vocabulary rarity."""
    single, accumulate = "single_value_per_sample", "accumulate_value_over_samples"
    DataAnalyzer(dataset, metric_names=["freq"],
                 metric_functions=[total_vocab_freq_metric(256, tokens_key="inputs")],
                 metric_types=[accumulate], metric_dtypes=[np.int64], save_path=save_path,
                 batch_size=1024, batch_by_slice=True).run_map_reduce()
    counts = MMapIndexedDataset(DataAnalyzer.output_prefix(save_path, "freq", "metric_value"))[0]
    DataAnalyzer(dataset, metric_names=["rarity"],
                 metric_functions=[vocab_rarity_metric(counts, tokens_key="inputs")],
                 metric_types=[single], metric_dtypes=[np.int64], save_path=save_path,
                 batch_size=1024, batch_by_slice=True).run_map_reduce()


def rarity_config(save_path, clusters):
    prefix = os.path.join(save_path, "rarity", "rarity")
    return {"seed": 7, "data_sampling": {"curriculum_learning": {
        "enabled": True, "data_cluster_path": clusters, "curriculum_metrics": {"rarity": {
            "index_to_sample_path": f"{prefix}_index_to_sample_percentile_merged",
            "index_to_metric_path": f"{prefix}_index_to_metric",
            "difficulty_type": "percentile", "clustering_type": "schedule_based",
            "min_difficulty": 10, "max_difficulty": 100, "schedule_type": "fixed_linear",
            "schedule_config": {"total_curriculum_step": 150, "difficulty_step": 1}}}}}}


class Factory:
    """``(workload, global_batch_size) -> SampleSource``; analyses once, new clusters per run."""

    def __init__(self, root):
        self.root, self.calls, self.sources = root, 0, []
        self.interrupt_after = None  # batches, then a KeyboardInterrupt (a kill)

    def __call__(self, workload, global_batch_size):
        dataset = workload.training_dataset()
        save_path = os.path.join(self.root, "analysis")
        if not os.path.isdir(save_path):
            analyze(dataset, save_path)
        self.calls += 1
        clusters = os.path.join(self.root, f"clusters{self.calls}")
        sampler = DeepSpeedDataSampler(rarity_config(save_path, clusters), len(dataset),
                                       global_batch_size, 0, 1, 1)
        device_dataset = DeviceDataset(dataset[:])

        def gather(ids):
            if self.interrupt_after is not None and source.batches > self.interrupt_after:
                self.interrupt_after = None
                raise KeyboardInterrupt
            return device_dataset(ids)

        source = SampleSource(sampler, gather)
        self.sources.append(source)
        return source


def flags(experiment_dir, max_steps, *extra):
    return parse_flags([
        "--workload=stdlib_lm", f"--workload_kwargs={TINY}",
        f"--submission_path={submission('nadamw_baseline')}", "--tuning_ruleset=self",
        f"--experiment_dir={experiment_dir}", "--experiment_name=study", "--rng_seed=3",
        f"--max_global_steps={max_steps}", f"--eval_every_steps={HALF}", "--progress=none",
        "--continue_past_target", *extra])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sample_source")
    factory = Factory(str(tmp))
    (full,) = run(flags(tmp / "full", STEPS), out=io.StringIO(), sample_source=factory)
    factory.interrupt_after = HALF  # killed in step 101, after the step-100 checkpoint
    with pytest.raises(KeyboardInterrupt):
        run(flags(tmp / "cut", STEPS), out=io.StringIO(), sample_source=factory)
    (resumed,) = run(flags(tmp / "cut", STEPS, "--resume_last_run"), out=io.StringIO(),
                     sample_source=factory)
    return {"tmp": tmp, "factory": factory, "full": full, "resumed": resumed}


def test_trains_on_the_curriculum_and_resumes_bit_identically(runs):
    full, resumed = runs["full"], runs["resumed"]
    assert full.summary["global_steps"] == resumed.summary["global_steps"] == STEPS
    losses = [r["validation/loss"] for _, r in full.eval_results]
    assert losses[-1] < losses[0] - 0.5  # it learns from the gathered batches
    jax.tree.map(np.testing.assert_array_equal, resumed.params, full.params)
    assert [r["validation/loss"] for _, r in resumed.eval_results] == losses


def test_the_stream_is_the_samplers_and_the_checkpoint_holds_its_state(runs):
    full_source, cut_source, resumed_source = runs["factory"].sources
    assert full_source.batches == resumed_source.batches == STEPS
    assert cut_source.batches == HALF + 1  # the batch whose gather was interrupted
    sampler = full_source.sampler
    assert sampler.curriculum_step == STEPS and sampler.current_difficulties == {"rarity": 100}
    assert len(sampler.data_cluster_paths) > 10  # the curriculum grew its clusters
    assert resumed_source.sampler.state_dict() == sampler.state_dict()
    for name, step in (("full", STEPS), ("cut", STEPS)):
        trial = runs["tmp"] / name / "study" / "stdlib_lm_jax" / "trial_1"
        saved_step, path = find_checkpoints(trial)[-1]  # the latest
        state = load_checkpoint(path).meta[SAMPLE_SOURCE_KEY]
        assert saved_step == step == state["batches"] == state["sampler"]["curriculum_step"]
        assert state == json.loads(json.dumps(state)) == full_source.state_dict()


def test_the_first_batches_are_the_easy_ones(runs, tmp_path):
    save_path = os.path.join(str(runs["tmp"]), "analysis")
    rarity = MMapIndexedDataset(
        DataAnalyzer.output_prefix(save_path, "rarity", "sample_to_metric")).values
    n = rarity.shape[0]
    sampler = DeepSpeedDataSampler(rarity_config(save_path, str(tmp_path)), n, 32, 0, 1, 1)
    first = next(iter(sampler))
    # Step 1 admits the 10% least rare windows only (min_difficulty 10, percentile).
    assert sampler.current_difficulties == {"rarity": 10}
    assert rarity[first].max() <= np.sort(rarity)[int(0.1 * n)]
    assert rarity.max() > np.sort(rarity)[int(0.1 * n)]


def test_open_sample_source_checks_the_checkpoint(runs):
    factory = runs["factory"]
    workload = get_workload("stdlib_lm", **json.loads(TINY))
    with pytest.raises(ValueError, match="the sample source's state"):
        open_sample_source(factory, workload, 32, start_step=5, checkpoint_meta={})
    state = factory.sources[0].state_dict()  # of step 200
    with pytest.raises(ValueError, match="the checkpoint's step 7"):
        open_sample_source(factory, workload, 32, start_step=7,
                           checkpoint_meta={SAMPLE_SOURCE_KEY: state})
    with pytest.raises(TypeError, match="must be"):
        open_sample_source(lambda w, b: iter([]), workload, 32)
    with pytest.raises(TypeError, match="sampler must be an object with state_dict"):
        SampleSource([np.arange(4)], lambda ids: ids)


HOOK = '''
import numpy as np
from algoperf_reinit.runner import SampleSource

CALLS = []


class Counting:
    """Ids 0, 1, ... in batches; resumable."""

    def __init__(self, size):
        self.size, self.drawn = size, 0

    def __iter__(self):
        while True:
            self.drawn += self.size  # the state after this batch
            yield np.arange(self.drawn - self.size, self.drawn) % 512

    def state_dict(self):
        return {"drawn": self.drawn}

    def load_state_dict(self, state):
        self.drawn = state["drawn"]


def sample_source(workload, global_batch_size, data_rng):
    CALLS.append((global_batch_size, np.asarray(data_rng).tolist()))
    dataset = workload.training_dataset()
    return SampleSource(Counting(global_batch_size),
                        lambda ids: {k: np.asarray(v) for k, v in dataset[ids].items()})
'''


def test_a_submissions_own_sample_source_hook_is_its_training_stream(tmp_path):
    from algoperf_reinit.runner import load_submission
    from tests.runner.conftest import delegating_submission

    path = tmp_path / "hooked.py"
    path.write_text(delegating_submission(submission("nadamw_baseline")) + HOOK)
    loaded = load_submission(str(path))
    assert loaded.sample_source is loaded.module.sample_source
    (result,) = run(flags(tmp_path / "exp", 3, "--eval_every_steps=3",
                          f"--submission_path={path}"), out=io.StringIO())
    assert result.summary["global_steps"] == 3
    (batch_size, data_rng), = loaded.module.CALLS  # once, with the trial's data key
    assert batch_size == 32 and len(data_rng) == 2
    trial = tmp_path / "exp" / "study" / "stdlib_lm_jax" / "trial_1"
    _, latest = find_checkpoints(trial)[-1]
    state = load_checkpoint(latest).meta[SAMPLE_SOURCE_KEY]
    assert state == {"batches": 3, "sampler": {"drawn": 96}}
    assert load_submission(submission("nadamw_baseline")).sample_source is None


def test_a_sample_source_hook_must_be_a_function(tmp_path):
    from algoperf_reinit.runner import load_submission
    from tests.runner.conftest import delegating_submission

    path = tmp_path / "bad.py"
    path.write_text(delegating_submission(submission("nadamw_baseline")) + "\nsample_source = 3\n")
    with pytest.raises(TypeError, match="sample_source must be a function"):
        load_submission(str(path))
