"""Batches of model inputs with dynamic padding and length bucketing.

Padding every batch to 512 wastes most of the compute on short texts (TREC
averages 11 word pieces). Here a batch is padded only to its longest member,
and training examples are grouped into buckets of similar length first, so
that members of a batch are alike in length. The attention mask hides the
padding, so the model's outputs do not depend on how much there is.
"""

import tensorflow as tf

from kerasbert.text import packing

DEFAULT_BUCKET_BOUNDARIES = (16, 32, 64, 128, 256)


def _bucket_boundaries(preprocessor, boundaries):
    if boundaries is not None:
        return sorted(boundaries)
    limit = preprocessor.sequence_length
    if preprocessor.segmented:
        # Lengths count all word pieces of a document's segments: add
        # boundaries at 1, 2, 4, 8 and 16 whole segments.
        return sorted(set(DEFAULT_BUCKET_BOUNDARIES) | {limit * 2**i for i in range(5)})
    return [b for b in DEFAULT_BUCKET_BOUNDARIES if b < limit]


def make_batches(
    dataset,
    preprocessor,
    batch_size,
    *,
    shuffle=False,
    seed=None,
    bucket_boundaries=None,
    bucket=True,
):
    """Turn `(text, label)` pairs into batches of padded model inputs.

    Args:
        dataset: `tf.data.Dataset` of `(text, label)` scalars.
        preprocessor: `kerasbert.ClassifierPreprocessor`. Its `padding` is
            ignored: batches are padded to their longest member.
        batch_size: int. Examples per batch.
        shuffle: bool. Reshuffle the examples every epoch.
        seed: int or None. The shuffle seed.
        bucket_boundaries: list of int or None. Word-piece lengths (with
            [CLS]/[SEP]; all segments of a segmented document together)
            separating the buckets. Defaults to `(16, 32, 64, 128, 256)`, cut
            at the preprocessor's `sequence_length`, plus 1, 2, 4, 8 and 16
            whole segments for a segmenting preprocessor.
        bucket: bool. Group similar lengths into the same batch. Without
            bucketing the order of examples is kept, as prediction needs.

    Returns:
        A `tf.data.Dataset` of `(features, labels)` with features of shape
        `(batch, longest length in the batch)`, or with a segmenting
        preprocessor `(batch, most segments in the batch, longest segment)`.
    """
    if shuffle:
        dataset = dataset.shuffle(
            dataset.cardinality(), seed=seed, reshuffle_each_iteration=True
        )
    pad_id = preprocessor.tokenizer.pad_token_id
    padding_values = (
        {"token_ids": pad_id, "segment_ids": 0, "padding_mask": 0},
        None,
    )
    if not bucket:
        dataset = dataset.batch(batch_size)
        dataset = dataset.map(
            lambda texts, labels: (_pack_longest(preprocessor, texts), labels),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return dataset.prefetch(tf.data.AUTOTUNE)

    def pack_one(text, label):
        features = _pack_longest(preprocessor, text[tf.newaxis])
        return {k: v[0] for k, v in features.items()}, label

    dataset = dataset.map(pack_one, num_parallel_calls=tf.data.AUTOTUNE)
    boundaries = _bucket_boundaries(preprocessor, bucket_boundaries)
    dataset = dataset.bucket_by_sequence_length(
        # Word pieces with padding: a segmented document counts all segments.
        element_length_func=lambda features, label: tf.size(features["token_ids"]),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=padding_values,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _pack_longest(preprocessor, texts):
    # The same as `padding="longest"`, without changing the caller's layer.
    return packing.trim_padding(preprocessor(texts))
