import pytest
import tensorflow as tf

from kerasbert.text import packing

ROWS = tf.ragged.constant([list(range(1, 11)), [1, 2, 3], []])


@pytest.mark.parametrize(
    "strategy, expected_long_row",
    [
        ("head", [1, 2, 3, 4, 5]),
        ("tail", [6, 7, 8, 9, 10]),
        ("head_tail", [1, 2, 8, 9, 10]),
    ],
)
def test_truncate_cuts_only_rows_that_do_not_fit(strategy, expected_long_row):
    result = packing.truncate(ROWS, 5, strategy, head_length=2).to_list()
    assert result == [expected_long_row, [1, 2, 3], []]


def test_head_tail_with_whole_budget_on_head_is_head():
    result = packing.truncate(ROWS, 4, "head_tail", head_length=4).to_list()
    assert result[0] == [1, 2, 3, 4]


def test_truncate_rejects_unknown_strategy_and_bad_head_length():
    with pytest.raises(ValueError, match="strategy"):
        packing.truncate(ROWS, 5, "middle")
    with pytest.raises(ValueError, match="head_length"):
        packing.truncate(ROWS, 5, "head_tail", head_length=6)


def test_pack_and_pad_to_fixed_and_longest_length():
    wrapped = packing.add_special_tokens(ROWS[1:], start_id=101, end_id=102)
    token_ids, mask = packing.pad(wrapped, pad_id=0)
    assert token_ids.numpy().tolist() == [[101, 1, 2, 3, 102], [101, 102, 0, 0, 0]]
    assert mask.numpy().sum(axis=1).tolist() == [5, 2]
    token_ids, mask = packing.pad(wrapped, pad_id=0, sequence_length=7)
    assert token_ids.shape == (2, 7)
    assert mask.numpy().sum(axis=1).tolist() == [5, 2]


def test_trim_padding_keeps_longest_real_row():
    features = {
        "token_ids": tf.constant([[5, 6, 0, 0], [5, 0, 0, 0]]),
        "padding_mask": tf.constant([[True, True, False, False], [True, False, False, False]]),
    }
    trimmed = packing.trim_padding(features)
    assert trimmed["token_ids"].numpy().tolist() == [[5, 6], [5, 0]]


@pytest.mark.parametrize(
    "kwargs, expected_segments, expected_counts",
    [
        ({}, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10], [1, 2, 3], []], [3, 1, 1]),
        ({"stride": 1}, [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10], [1, 2, 3], []], [3, 1, 1]),
        ({"max_segments": 2}, [[1, 2, 3, 4], [9, 10], [1, 2, 3], []], [2, 1, 1]),
        ({"max_segments": 1}, [[1, 2, 3, 4], [1, 2, 3], []], [1, 1, 1]),
    ],
)
def test_split_into_segments(kwargs, expected_segments, expected_counts):
    segments, counts = packing.split_into_segments(ROWS, 4, **kwargs)
    assert segments.to_list() == expected_segments
    assert counts.numpy().tolist() == expected_counts


def test_segment_count_is_ceil_of_length_over_segment_length():
    rows = tf.ragged.constant([list(range(n)) for n in (510, 511, 1020, 1021, 3045)])
    _, counts = packing.split_into_segments(rows, 510)
    assert counts.numpy().tolist() == [1, 2, 2, 3, 6]


def test_split_rejects_bad_stride_and_cap():
    with pytest.raises(ValueError, match="stride"):
        packing.split_into_segments(ROWS, 4, stride=4)
    with pytest.raises(ValueError, match="max_segments"):
        packing.split_into_segments(ROWS, 4, max_segments=0)
