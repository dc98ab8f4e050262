"""Per-sample metrics against the spec's formulas (§3.1), computed here with plain Python
loops and ``math``, one sample and one token at a time."""

from __future__ import annotations

import collections
import doctest
import math

import numpy as np
import pytest

import algoperf_reinit.data_efficiency as de
from algoperf_reinit.data_efficiency import _metrics

VOCAB = 11


def batch(seed=0, samples=16, length=24):
    """Integer tokens with a padded tail (id 0) and the matching 0/1 padding mask."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, VOCAB + 1, size=(samples, length))
    lengths = rng.integers(0, length + 1, size=samples)
    mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int64)
    return tokens * mask, mask


def reference_neg_log_p(counts):
    replaced = [1 if c == 0 else int(c) for c in counts]
    total = sum(replaced)
    return [-math.log(c / total) for c in replaced]


def reference_rarity(row, neg_log_p, mask_row=None):
    total = 0.0
    for j, token in enumerate(row):
        weight = 1.0 if mask_row is None else float(mask_row[j])
        total += weight * neg_log_p[int(token)]
    return int(total)


def test_module_examples_run():
    assert doctest.testmod(_metrics).failed == 0


class TestSequenceLength:
    def test_counts_non_padding_tokens(self):
        tokens, mask = batch()
        expect = [sum(1 for t in row if t != 0) for row in tokens.tolist()]
        assert de.sequence_length(tokens).tolist() == expect
        assert de.sequence_length(mask=mask).tolist() == expect
        assert de.sequence_length(mask=mask.astype(np.float32) * 0.5).tolist() == expect
        assert de.sequence_length(tokens).dtype == np.int64

    def test_padding_id_and_extra_axes(self):
        tokens = np.array([[[7, 7], [1, 2]], [[7, 3], [7, 7]]])
        assert de.sequence_length(tokens, padding_id=7).tolist() == [2, 1]
        assert de.sequence_length(mask=tokens != 7).tolist() == [2, 1]

    def test_errors(self):
        with pytest.raises(ValueError, match=r"tokens must be an array when no mask is given, "
                                             r"got None"):
            de.sequence_length()
        with pytest.raises(TypeError, match=r"tokens must be an integer token array, got "
                                            r"'float64' of type str"):
            de.sequence_length(np.zeros((2, 3)))
        with pytest.raises(ValueError, match=r"tokens.shape must be \(samples, tokens, \.\.\.\): "
                                             r"at least 2 axes, got \(3,\)"):
            de.sequence_length(np.arange(3))
        with pytest.raises(ValueError, match=r"mask.shape must be \(samples, \.\.\.\), got \(\)"):
            de.sequence_length(mask=np.int64(1))
        with pytest.raises(TypeError, match=r"padding_id must be an int, got 0.0"):
            de.sequence_length(np.zeros((1, 2), int), padding_id=0.0)


class TestVocabHistogram:
    def test_bincount_with_minlength_vocab_plus_one(self):
        tokens, mask = batch(1)
        counts = collections.Counter(tokens.ravel().tolist())
        assert de.vocab_histogram(tokens, VOCAB).tolist() == [counts[v] for v in range(VOCAB + 1)]
        masked = collections.Counter(t for t, m in zip(tokens.ravel().tolist(),
                                                       mask.ravel().tolist(), strict=True) if m)
        assert de.vocab_histogram(tokens, VOCAB, mask=mask).tolist() == [
            masked[v] for v in range(VOCAB + 1)]
        assert de.vocab_histogram(tokens[:0], VOCAB).tolist() == [0] * (VOCAB + 1)

    def test_errors(self):
        with pytest.raises(ValueError, match=r"tokens must be in \[0, vocab_size\] = \[0, 3\], "
                                             r"got \[0, 4\]"):
            de.vocab_histogram(np.array([[0, 4]]), 3)
        with pytest.raises(ValueError, match=r"got \[-1, 2\]"):
            de.vocab_histogram(np.array([[-1, 2]]), 3)
        with pytest.raises(ValueError, match=r"vocab_size must be an int >= 1, got 0"):
            de.vocab_histogram(np.array([[0]]), 0)
        with pytest.raises(ValueError, match=r"mask.shape must be the tokens' shape \(1, 2\), "
                                             r"got \(2,\)"):
            de.vocab_histogram(np.array([[0, 1]]), 3, mask=np.ones(2))
        with pytest.raises(TypeError, match=r"mask must be a bool or numeric array, got "
                                            r"'str32' of type str"):
            de.vocab_histogram(np.array([[0, 1]]), 3, mask=np.array([["a", "b"]]))


class TestVocabRarity:
    def test_neg_log_prob_replaces_zero_counts_by_one(self):
        counts = np.array([0, 3, 1, 0, 6])
        assert de.vocab_neg_log_prob(counts).tolist() == pytest.approx(
            reference_neg_log_p(counts), rel=1e-15)
        assert de.vocab_neg_log_prob(counts).dtype == np.float64

    @pytest.mark.parametrize("seed", range(4))
    def test_rarity_is_the_truncated_sum(self, seed):
        tokens, mask = batch(seed)
        counts = de.vocab_histogram(tokens, VOCAB)
        log_p = reference_neg_log_p(counts)
        rows, masks = tokens.tolist(), mask.tolist()
        assert de.vocab_rarity(tokens, de.vocab_neg_log_prob(counts)).tolist() == [
            reference_rarity(r, log_p) for r in rows]
        assert de.vocab_rarity(tokens, de.vocab_neg_log_prob(counts), mask=mask).tolist() == [
            reference_rarity(r, log_p, m) for r, m in zip(rows, masks, strict=True)]
        assert de.vocab_rarity(tokens, de.vocab_neg_log_prob(counts)).dtype == np.int64

    def test_a_hand_computed_value(self):
        # counts [1, 1, 2]: p = 1/4, 1/4, 1/2; [0, 2, 2] -> ln 4 + 2 ln 2 = 2.77... -> 2
        log_p = de.vocab_neg_log_prob(np.array([1, 1, 2]))
        assert de.vocab_rarity(np.array([[0, 2, 2], [0, 0, 1]]), log_p).tolist() == [2, 4]

    def test_errors(self):
        with pytest.raises(TypeError, match=r"token_counts must be a non-empty 1-D integer "
                                            r"array, got 'float64'"):
            de.vocab_neg_log_prob(np.array([1.0]))
        with pytest.raises(ValueError, match=r"min\(token_counts\) must be >= 0, got -1"):
            de.vocab_neg_log_prob(np.array([2, -1]))
        with pytest.raises(ValueError, match=r"tokens must be valid ids of neg_log_p: in \[0, "
                                             r"2\], got \[0, 3\]"):
            de.vocab_rarity(np.array([[0, 3]]), np.ones(3))
        with pytest.raises(ValueError, match=r"neg_log_p.shape must be 1-D \(one entry per token "
                                             r"id\), got \(1, 3\)"):
            de.vocab_rarity(np.array([[0]]), np.ones((1, 3)))


class TestSeqlenVocabRarity:
    def test_coefficient_formula(self):
        log_p = de.vocab_neg_log_prob(np.array([5, 1, 9, 0]))
        for seq_len in (1, 7, 128, 2048):
            expect = 10 ** (math.ceil(math.log(seq_len * max(log_p.tolist()), 10)) + 1)
            assert de.seqlen_vocab_rarity_coefficient(log_p, seq_len) == expect

    def test_coefficient_uses_math_log_base_10(self):
        # math.log(0.1, 10) = -0.9999999999999998 (ceil 0), math.log10(0.1) = -1.0 (ceil -1).
        assert de.seqlen_vocab_rarity_coefficient(np.array([0.1]), seq_len=1) == 10
        assert de.seqlen_vocab_rarity_coefficient(np.array([100.0]), seq_len=10) == 10**4

    @pytest.mark.parametrize("seed", range(3))
    def test_length_times_coefficient_plus_masked_rarity(self, seed):
        tokens, mask = batch(seed, length=32)
        counts = de.vocab_histogram(tokens, VOCAB, mask=mask)
        log_p = reference_neg_log_p(counts)
        coefficient = 10 ** (math.ceil(math.log(32 * max(log_p), 10)) + 1)
        expect = [sum(1 for m in mrow if m) * coefficient + reference_rarity(r, log_p, mrow)
                  for r, mrow in zip(tokens.tolist(), mask.tolist(), strict=True)]
        found = de.seqlen_vocab_rarity(tokens, de.vocab_neg_log_prob(counts), mask)
        assert found.tolist() == expect and found.dtype == np.int64
        longer = de.seqlen_vocab_rarity(tokens, de.vocab_neg_log_prob(counts), mask, seq_len=4096)
        assert not np.array_equal(longer, found)

    def test_errors(self):
        with pytest.raises(ValueError, match=r"seq_len must be an int >= 1, got 0"):
            de.seqlen_vocab_rarity_coefficient(np.ones(2), 0)
        with pytest.raises(ValueError, match=r"max\(neg_log_p\) must be > 0, got 0.0; a "
                                             r"vocabulary of one token has no rarity"):
            de.seqlen_vocab_rarity_coefficient(np.zeros(2), 4)
        with pytest.raises(ValueError, match=r"seq_len \* max\(neg_log_p\) must be large enough "
                                             r"\(about 0.01\)"):
            de.seqlen_vocab_rarity_coefficient(np.array([0.001]), 1)


class TestMetricFunctions:
    def test_factories_read_batch_keys(self):
        tokens, mask = batch(5)
        counts = de.vocab_histogram(tokens, VOCAB, mask=mask)
        log_p = de.vocab_neg_log_prob(counts)
        record = {"text": tokens, "padding_mask": mask}
        assert de.seqlen_metric(mask_key="padding_mask")(record).tolist() == de.sequence_length(
            mask=mask).tolist()
        assert de.seqlen_metric(tokens_key="text")(record).tolist() == de.sequence_length(
            tokens).tolist()
        assert de.seqlen_metric(padding_id=3)(tokens).tolist() == de.sequence_length(
            tokens, padding_id=3).tolist()
        hist = de.total_vocab_freq_metric(VOCAB, tokens_key="text", mask_key="padding_mask")
        assert hist(record).tolist() == counts.tolist()
        assert de.total_vocab_freq_metric(VOCAB)(tokens).tolist() == de.vocab_histogram(
            tokens, VOCAB).tolist()
        rarity = de.vocab_rarity_metric(counts, tokens_key="text", mask_key="padding_mask")
        assert rarity(record).tolist() == de.vocab_rarity(tokens, log_p, mask=mask).tolist()
        assert de.vocab_rarity_metric(counts)(tokens).tolist() == de.vocab_rarity(
            tokens, log_p).tolist()
        both = de.seqlen_vocab_rarity_metric(counts, seq_len=24, tokens_key="text",
                                          mask_key="padding_mask")
        assert both(record).tolist() == de.seqlen_vocab_rarity(tokens, log_p, mask).tolist()
        # Without a mask key, the mask is tokens != padding_id (here the same mask).
        assert de.seqlen_vocab_rarity_metric(counts, seq_len=24)(tokens).tolist() == both(
            record).tolist()

    def test_key_errors(self):
        with pytest.raises(ValueError, match=r"tokens_key must be a key of the batch when "
                                             r"batches are dicts, got None; the batch has keys "
                                             r"\['text'\]"):
            de.seqlen_metric()({"text": np.zeros((1, 2), int)})
        with pytest.raises(ValueError, match=r"mask_key must be a key of the batch, got 'mask'; "
                                             r"the batch has keys \['text'\]"):
            de.seqlen_metric(mask_key="mask")({"text": np.zeros((1, 2), int)})
        with pytest.raises(ValueError, match=r"tokens_key must be a key of the batch, got 'x'; "
                                             r"the batch has keys none \(an array\)"):
            de.seqlen_metric(tokens_key="x")(np.zeros((1, 2), int))
        with pytest.raises(ValueError, match=r"seq_len must be an int >= 1, got 0"):
            de.seqlen_vocab_rarity_metric(np.array([1, 2]), seq_len=0)
        with pytest.raises(TypeError, match=r"padding_id must be an int, got '0'"):
            de.seqlen_metric(padding_id="0")
