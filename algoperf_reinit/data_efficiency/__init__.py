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
from algoperf_reinit.data_efficiency._index_files import (
    DTYPE_CODES,
    IndexedDatasetWriter,
    MMapIndexedDataset,
    find_fit_int_dtype,
    write_rows,
)
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

__all__: list[str] = [
    "DTYPE_CODES",
    "DataAnalyzer",
    "IndexedDatasetWriter",
    "MMapIndexedDataset",
    "MapProgress",
    "find_fit_int_dtype",
    "seqlen_metric",
    "seqlen_vocab_rarity",
    "seqlen_vocab_rarity_coefficient",
    "seqlen_vocab_rarity_metric",
    "sequence_length",
    "total_vocab_freq_metric",
    "vocab_histogram",
    "vocab_neg_log_prob",
    "vocab_rarity",
    "vocab_rarity_metric",
    "write_rows",
]
