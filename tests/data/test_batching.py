import tensorflow as tf

import kerasbert

TEXTS = [("x " * n).strip() for n in (1, 40, 2, 3, 70, 5, 38, 1, 2, 90)]


def make_dataset():
    return tf.data.Dataset.from_tensor_slices((TEXTS, list(range(len(TEXTS)))))


def test_buckets_pad_to_longest_member_and_keep_every_example(tiny):
    _, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=512)
    batches = kerasbert.make_batches(
        make_dataset(), preprocessor, batch_size=3, shuffle=True, seed=0,
        bucket_boundaries=[16, 64],
    )
    seen = []
    for features, labels in batches:
        lengths = features["padding_mask"].numpy().sum(axis=1)
        assert features["token_ids"].shape[1] == lengths.max()
        # One bucket per batch: all members on the same side of each boundary.
        assert len({sum(length >= b for b in (16, 64)) for length in lengths}) == 1
        seen += labels.numpy().tolist()
    assert sorted(seen) == list(range(len(TEXTS)))


def test_batches_equal_preprocessor_output_trimmed(tiny):
    _, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=64)
    batches = kerasbert.make_batches(make_dataset(), preprocessor, batch_size=4, bucket=False)
    features, labels = next(iter(batches))
    expected = preprocessor(TEXTS[:4])
    length = features["token_ids"].shape[1]
    assert labels.numpy().tolist() == [0, 1, 2, 3]
    for name in expected:
        tf.debugging.assert_equal(features[name], expected[name][:, :length])


def test_reshuffles_every_epoch_but_reproducibly(tiny):
    _, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=512)

    def order(seed):
        batches = kerasbert.make_batches(
            make_dataset(), preprocessor, 2, shuffle=True, seed=seed, bucket=False
        )
        return [[int(l) for _, ls in batches for l in ls] for _ in range(2)]

    first = order(7)
    assert first == order(7)
    assert first[0] != first[1]


def test_pad_to_boundaries_limits_shapes(tiny):
    _, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=128)
    for bucket in (True, False):
        batches = kerasbert.make_batches(
            make_dataset(), preprocessor, 3, bucket=bucket, bucket_boundaries=[16, 64],
            pad_to_boundaries=True,
        )
        lengths = {int(f["token_ids"].shape[1]) for f, _ in batches}
        assert lengths <= {16, 64, 128}, lengths
