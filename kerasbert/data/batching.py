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
    pad_to_boundaries=False,
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
        pad_to_boundaries: bool. Pad each batch up to the next bucket
            boundary (or `sequence_length`) instead of its longest member, so
            that only a few shapes occur: what XLA (`jit_compile`) needs to
            avoid compiling for every length. Segmented batches keep
            dynamic padding.

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
    boundaries = _bucket_boundaries(preprocessor, bucket_boundaries)
    if not bucket:
        lengths = boundaries + [preprocessor.sequence_length] if pad_to_boundaries else None
        dataset = dataset.batch(batch_size)
        dataset = dataset.map(
            lambda texts, labels: (_pack_longest(preprocessor, texts, lengths), labels),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return dataset.prefetch(tf.data.AUTOTUNE)

    def pack_one(text, label):
        features = _pack_longest(preprocessor, text[tf.newaxis])
        return {k: v[0] for k, v in features.items()}, label

    dataset = dataset.map(pack_one, num_parallel_calls=tf.data.AUTOTUNE)
    if pad_to_boundaries and not preprocessor.segmented:
        # tf.data pads a bucket to its upper boundary minus one.
        boundaries = [b + 1 for b in boundaries] + [preprocessor.sequence_length + 1]
    dataset = dataset.bucket_by_sequence_length(
        # Word pieces with padding: a segmented document counts all segments.
        element_length_func=lambda features, label: tf.size(features["token_ids"]),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padding_values=padding_values,
        pad_to_bucket_boundary=pad_to_boundaries and not preprocessor.segmented,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _pack_longest(preprocessor, texts, lengths=None):
    # The same as `padding="longest"`, without changing the caller's layer;
    # with `lengths`, rounded up to the next of them.
    features = packing.trim_padding(preprocessor(texts))
    if lengths is None or preprocessor.segmented:
        return features
    longest = tf.shape(features["token_ids"])[-1]
    target = tf.gather(lengths, tf.searchsorted(lengths, longest[tf.newaxis]))[0]
    padding = {"token_ids": preprocessor.tokenizer.pad_token_id, "segment_ids": 0, "padding_mask": 0}
    return {
        name: tf.pad(value, [[0, 0], [0, target - longest]], constant_values=padding[name])
        for name, value in features.items()
    }


def worker_share(dataset, batch_size, context=None):
    """This input pipeline's share of `dataset`, and its batch size.

    With a `tf.distribute.InputContext` (from
    `Strategy.distribute_datasets_from_function`), every
    `num_input_pipelines`-th example, starting at `input_pipeline_id`, and
    the per-replica batch size of the global `batch_size`; without one, the
    whole dataset and `batch_size`.

    Example:
    ```python
    import tensorflow as tf
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1,
                                         num_replicas_in_sync=2)
    share, size = kerasbert.data.batching.worker_share(tf.data.Dataset.range(6), 8, context)
    list(share.as_numpy_iterator()), size  # ([1, 3, 5], 4)
    ```
    """
    if context is None:
        return dataset, batch_size
    share = dataset.shard(context.num_input_pipelines, context.input_pipeline_id)
    return share, context.get_per_replica_batch_size(batch_size)
