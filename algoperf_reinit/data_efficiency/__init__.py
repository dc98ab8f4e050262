"""Data efficiency as in DeepSpeed's Data Efficiency library, in JAX.

Host side (NumPy only, never JAX): the ``data_efficiency`` configuration of a
DeepSpeed JSON config, the curriculum and random-LTD schedules, the offline data
analyzer with DeepSpeed's index-file format, and the curriculum data sampler.
Device side: jitted gathers of examples by sample id, the sequence-length curriculum
and random layerwise token dropping.

The package never imports ``algoperf_reinit.runner``, ``algoperf_reinit.submission``,
``algoperf_reinit.plotting``, ``algoperf_reinit.reinit``, the bundled workloads,
``absl.flags`` or ``os.environ``.
"""

from algoperf_reinit.data_efficiency._analyzer import DataAnalyzer, MapProgress
from algoperf_reinit.data_efficiency._buckets import (
    DEFAULT_MAX_BUCKETS,
    ROUNDINGS,
    ShapeBuckets,
    ShapeCount,
    ShapeCounter,
    shape_name,
)
from algoperf_reinit.data_efficiency._config import (
    DATA_EFFICIENCY_ENABLED_DEFAULT,
    DATA_EFFICIENCY_SEED_DEFAULT,
    DataEfficiencyConfig,
    parse_data_efficiency_config,
)
from algoperf_reinit.data_efficiency._config_common import FrozenMapping
from algoperf_reinit.data_efficiency._config_curriculum import CurriculumLearningConfig
from algoperf_reinit.data_efficiency._config_ltd import (
    LayerTokenLRScheduleConfig,
    RandomLTDSchedule,
    RandomLTDScheduleConfig,
)
from algoperf_reinit.data_efficiency._config_metric import (
    CLUSTERING_TYPES,
    DIFFICULTY_TYPES,
    SCHEDULE_TYPES,
    CurriculumMetricConfig,
    CurriculumScheduleConfig,
)
from algoperf_reinit.data_efficiency._config_routing import DataRoutingConfig, RandomLTDConfig
from algoperf_reinit.data_efficiency._config_sampling import (
    DATA_SAMPLING_NUM_EPOCHS_DEFAULT,
    DATA_SAMPLING_NUM_WORKERS_DEFAULT,
    DATA_SAMPLING_PIN_MEMORY_DEFAULT,
    DataSamplingConfig,
    DynamicBatchingConfig,
)
from algoperf_reinit.data_efficiency._curriculum_scheduler import (
    CurriculumScheduler,
    CurriculumState,
)
from algoperf_reinit.data_efficiency._device_gather import (
    PLACEMENTS,
    REPLICATE_MAX_BYTES,
    DeviceDataset,
)
from algoperf_reinit.data_efficiency._difficulty import (
    fixed_discrete_difficulty,
    fixed_linear_difficulty,
    fixed_root_difficulty,
)
from algoperf_reinit.data_efficiency._index_files import (
    DTYPE_CODES,
    IndexedDatasetWriter,
    MMapIndexedDataset,
    find_fit_int_dtype,
    write_rows,
)
from algoperf_reinit.data_efficiency._layer_tokens import (
    LAYER_TOKENS_CLOCK,
    LayerTokenCounter,
    layer_token_lr_table,
    set_layer_tokens,
    step_layer_tokens,
)
from algoperf_reinit.data_efficiency._legacy import LEGACY_METRIC_NAME
from algoperf_reinit.data_efficiency._ltd_layer import (
    RANDOM_LTD_RNG,
    BlockFactory,
    RandomLTDBlock,
    block_factory_from_config,
    random_ltd_block_factory,
)
from algoperf_reinit.data_efficiency._ltd_ops import (
    bert_sample_tokens,
    gather_mask,
    gather_tokens,
    gpt_sample_tokens,
    sample_indices,
    scatter_tokens,
)
from algoperf_reinit.data_efficiency._ltd_scheduler import RandomLTDScheduler, RandomLTDState
from algoperf_reinit.data_efficiency._metrics import (
    seqlen_metric,
    seqlen_vocab_rarity,
    seqlen_vocab_rarity_coefficient,
    seqlen_vocab_rarity_metric,
    sequence_length,
    total_vocab_freq_metric,
    vocab_histogram,
    vocab_neg_log_prob,
    vocab_rarity,
    vocab_rarity_metric,
)
from algoperf_reinit.data_efficiency._sampler import DeepSpeedDataSampler
from algoperf_reinit.data_efficiency._schedule_runs import (
    CURRICULUM_FIRST_STEP,
    Run,
    curriculum_runs,
    joint_runs,
    monotone_runs,
    stepwise_runs,
)
from algoperf_reinit.data_efficiency._seqlen_curriculum import (
    UNITS,
    SeqlenCurriculum,
    SeqlenPlan,
    TokenCounts,
)
from algoperf_reinit.data_efficiency._seqlen_ops import (
    PACKING_KEYS,
    SEQLEN_MODES,
    TOKEN_KEYS,
    WEIGHTS_KEY,
    SequenceBatch,
    count_weights,
    reshape_batch,
    reshaped_rows,
    seqlen_op,
    sequence_batch,
    truncate_batch,
)

__all__ = [
    "CLUSTERING_TYPES",
    "CURRICULUM_FIRST_STEP",
    "DATA_EFFICIENCY_ENABLED_DEFAULT",
    "DATA_EFFICIENCY_SEED_DEFAULT",
    "DATA_SAMPLING_NUM_EPOCHS_DEFAULT",
    "DATA_SAMPLING_NUM_WORKERS_DEFAULT",
    "DATA_SAMPLING_PIN_MEMORY_DEFAULT",
    "DEFAULT_MAX_BUCKETS",
    "DIFFICULTY_TYPES",
    "DTYPE_CODES",
    "LAYER_TOKENS_CLOCK",
    "LEGACY_METRIC_NAME",
    "PACKING_KEYS",
    "PLACEMENTS",
    "RANDOM_LTD_RNG",
    "REPLICATE_MAX_BYTES",
    "ROUNDINGS",
    "SCHEDULE_TYPES",
    "SEQLEN_MODES",
    "TOKEN_KEYS",
    "UNITS",
    "WEIGHTS_KEY",
    "BlockFactory",
    "CurriculumLearningConfig",
    "CurriculumMetricConfig",
    "CurriculumScheduleConfig",
    "CurriculumScheduler",
    "CurriculumState",
    "DataAnalyzer",
    "DataEfficiencyConfig",
    "DataRoutingConfig",
    "DataSamplingConfig",
    "DeepSpeedDataSampler",
    "DeviceDataset",
    "DynamicBatchingConfig",
    "FrozenMapping",
    "IndexedDatasetWriter",
    "LayerTokenCounter",
    "LayerTokenLRScheduleConfig",
    "MMapIndexedDataset",
    "MapProgress",
    "RandomLTDBlock",
    "RandomLTDConfig",
    "RandomLTDSchedule",
    "RandomLTDScheduleConfig",
    "RandomLTDScheduler",
    "RandomLTDState",
    "Run",
    "SeqlenCurriculum",
    "SeqlenPlan",
    "SequenceBatch",
    "ShapeBuckets",
    "ShapeCount",
    "ShapeCounter",
    "TokenCounts",
    "bert_sample_tokens",
    "block_factory_from_config",
    "count_weights",
    "curriculum_runs",
    "find_fit_int_dtype",
    "fixed_discrete_difficulty",
    "fixed_linear_difficulty",
    "fixed_root_difficulty",
    "gather_mask",
    "gather_tokens",
    "gpt_sample_tokens",
    "joint_runs",
    "layer_token_lr_table",
    "monotone_runs",
    "parse_data_efficiency_config",
    "random_ltd_block_factory",
    "reshape_batch",
    "reshaped_rows",
    "sample_indices",
    "scatter_tokens",
    "seqlen_metric",
    "seqlen_op",
    "seqlen_vocab_rarity",
    "seqlen_vocab_rarity_coefficient",
    "seqlen_vocab_rarity_metric",
    "sequence_batch",
    "sequence_length",
    "set_layer_tokens",
    "shape_name",
    "step_layer_tokens",
    "stepwise_runs",
    "total_vocab_freq_metric",
    "truncate_batch",
    "vocab_histogram",
    "vocab_neg_log_prob",
    "vocab_rarity",
    "vocab_rarity_metric",
    "write_rows",
]

from algoperf_reinit.data_efficiency._seqlen_selection import (
    REPORT_FILE as SEQLEN_REPORT_FILE,
)
from algoperf_reinit.data_efficiency._seqlen_selection import SeqlenSelection

__all__ += ["SEQLEN_REPORT_FILE", "SeqlenSelection"]
