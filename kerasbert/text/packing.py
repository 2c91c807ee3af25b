"""In-graph truncation and packing of word-piece sequences for BERT.

Every function takes and returns `tf.RaggedTensor`s of shape
`(batch, None)`, so it runs inside `tf.data`, `tf.function` and a SavedModel.
"""

import tensorflow as tf

TRUNCATION_STRATEGIES = ("head", "tail", "head_tail")
# The paper's defaults (§5.3, Table 2), declared once for every layer,
# builder and config that takes them.
DEFAULT_SEQUENCE_LENGTH = 512
DEFAULT_TRUNCATION = "head"
DEFAULT_HEAD_LENGTH = 128


def truncate(token_ids, max_length, strategy=DEFAULT_TRUNCATION,
             head_length=DEFAULT_HEAD_LENGTH):
    """Cut every row of `token_ids` down to at most `max_length` word pieces.

    Rows that already fit are returned unchanged. Longer rows keep:
    - `"head"`: their first `max_length` pieces;
    - `"tail"`: their last `max_length` pieces;
    - `"head_tail"`: their first `head_length` and last
      `max_length - head_length` pieces (Sun et al. 2019, Table 2: 128 + 382
      for a 510-piece budget).

    Args:
        token_ids: int `tf.RaggedTensor` of shape `(batch, None)`.
        max_length: int. The number of pieces kept per row.
        strategy: str. One of `"head"`, `"tail"`, `"head_tail"`.
        head_length: int. Pieces kept from the start under `"head_tail"`.

    Returns:
        A `tf.RaggedTensor` of the same dtype with rows of at most
        `max_length` pieces.
    """
    if strategy not in TRUNCATION_STRATEGIES:
        raise ValueError(
            f"`strategy` must be one of {TRUNCATION_STRATEGIES}. Received: {strategy!r}"
        )
    if strategy == "head_tail" and not 0 <= head_length <= max_length:
        raise ValueError(
            f"`head_length` must be between 0 and {max_length} (the pieces "
            f"available after [CLS] and [SEP]). Received: {head_length}"
        )
    # Keep-masks over flat positions: one gather-free pass for every strategy.
    row_lengths = tf.gather(token_ids.row_lengths(), token_ids.value_rowids())
    positions = tf.ragged.range(token_ids.row_lengths()).flat_values
    if strategy == "head":
        keep = positions < max_length
    elif strategy == "tail":
        keep = positions >= row_lengths - max_length
    else:
        tail_length = max_length - head_length
        keep = (
            (row_lengths <= max_length)
            | (positions < head_length)
            | (positions >= row_lengths - tail_length)
        )
    return tf.ragged.boolean_mask(token_ids, token_ids.with_flat_values(keep))


def split_into_segments(token_ids, segment_length, stride=0, max_segments=None):
    """Split every row into consecutive segments of at most `segment_length`.

    Segment j of a row starts at word piece `j · (segment_length − stride)`,
    so consecutive segments share `stride` pieces. A row of n pieces gives
    k = 1 + ⌈max(n − segment_length, 0) / (segment_length − stride)⌉
    segments; with `stride=0` that is ⌈n / segment_length⌉ (at least one,
    also for an empty row). With `max_segments = m`, a row with more than m
    segments keeps its first ⌈m/2⌉ and last ⌊m/2⌋ segments (the head and
    tail of the document, as head+tail truncation does).

    Args:
        token_ids: int `tf.RaggedTensor` of shape `(batch, None)`.
        segment_length: int. Word pieces per segment.
        stride: int. Word pieces shared by consecutive segments.
        max_segments: int or None. The most segments kept per row.

    Returns:
        A tuple `(segments, segments_per_row)`: a `tf.RaggedTensor` of shape
        `(total_segments, None)`, the segments of all rows in order, and an
        int64 tensor of shape `(batch,)`.
    """
    if not 0 <= stride < segment_length:
        raise ValueError(
            f"`stride` must be in [0, {segment_length}) for segments of "
            f"{segment_length} word pieces. Received: stride={stride}"
        )
    if max_segments is not None and max_segments < 1:
        raise ValueError(f"`max_segments` must be at least 1. Received: {max_segments}")
    step = segment_length - stride
    lengths = token_ids.row_lengths()
    overflow = tf.maximum(lengths - segment_length, 0)
    counts = 1 + (overflow + step - 1) // step
    segment_index = tf.ragged.range(counts)
    if max_segments is not None:
        index = segment_index.flat_values
        count = tf.gather(counts, segment_index.value_rowids())
        keep = (index < (max_segments + 1) // 2) | (index >= count - max_segments // 2)
        segment_index = tf.ragged.boolean_mask(
            segment_index, segment_index.with_flat_values(keep)
        )
    row = segment_index.value_rowids()
    starts = segment_index.flat_values * step
    ends = tf.minimum(starts + segment_length, tf.gather(lengths, row))
    offset = tf.gather(token_ids.row_starts(), row)
    positions = tf.ragged.range(offset + starts, offset + ends)
    segments = tf.gather(token_ids.flat_values, positions)
    return segments, segment_index.row_lengths()


def add_special_tokens(token_ids, start_id, end_id):
    """Wrap every row as `[CLS] row [SEP]`."""
    batch_size = token_ids.nrows()
    start = tf.fill([batch_size, 1], tf.cast(start_id, token_ids.dtype))
    end = tf.fill([batch_size, 1], tf.cast(end_id, token_ids.dtype))
    return tf.concat([start, token_ids, end], axis=1)


def pad(token_ids, pad_id, sequence_length=None):
    """Densify ragged rows, padding with `pad_id`.

    Args:
        token_ids: int `tf.RaggedTensor` of shape `(batch, None)`.
        pad_id: int. The padding token id.
        sequence_length: int or None. Pad to this length; `None` pads to the
            longest row of the batch (dynamic padding).

    Returns:
        A tuple `(token_ids, padding_mask)` of dense tensors of shape
        `(batch, length)`.
    """
    shape = None if sequence_length is None else [None, sequence_length]
    dense = token_ids.to_tensor(default_value=pad_id, shape=shape)
    padding_mask = tf.ones_like(token_ids, dtype=tf.bool).to_tensor(
        default_value=False, shape=shape
    )
    return dense, padding_mask


def trim_padding(features):
    """Cut dense model inputs down to the longest real row of the batch.

    Args:
        features: dict with `"padding_mask"` and other tensors of shape
            `(batch, length)`.

    Returns:
        The same dict with every tensor cut to `(batch, longest)`.
    """
    mask = tf.cast(features["padding_mask"], tf.int32)
    # Every real row holds at least [CLS] [SEP]; an empty batch keeps those
    # two columns (the maximum of nothing is the most negative int).
    longest = tf.maximum(tf.reduce_max(tf.reduce_sum(mask, axis=-1)), 2)
    return {name: value[..., :longest] for name, value in features.items()}
