import numpy as np
import pytest
import tensorflow as tf

import kerasbert
from kerasbert.backbones import tiny_vocabulary
from tests.helpers import assert_config_round_trip

LONG_TEXT = "a b c d e f g h i j"  # ten word pieces with the tiny vocabulary


def ids(words):
    vocabulary = tiny_vocabulary()
    return [vocabulary.index(w) for w in ["[CLS]", *words, "[SEP]"]]


@pytest.mark.parametrize(
    "truncation, kept",
    [
        ("head", "a b c d e"),
        ("tail", "f g h i j"),
        ("head_tail", "a b h i j"),
    ],
)
def test_truncation_keeps_exact_word_pieces(tiny, truncation, kept):
    _, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(
        tokenizer, sequence_length=7, truncation=truncation, head_length=2
    )
    features = preprocessor([LONG_TEXT, "a b"])
    assert features["token_ids"].numpy()[0].tolist() == ids(kept.split())
    # A text that fits is never cut, whatever the strategy.
    assert features["token_ids"].numpy()[1].tolist() == ids(["a", "b"]) + [0, 0, 0]
    assert features["padding_mask"].numpy().sum(axis=1).tolist() == [7, 4]
    assert features["segment_ids"].numpy().max() == 0


def test_paper_head_tail_at_512_keeps_128_plus_382(tiny):
    _, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(
        tokenizer, sequence_length=512, truncation="head_tail", head_length=128
    )
    words = [f"{i % 10}" for i in range(1000)]
    token_ids = preprocessor([" ".join(words)])["token_ids"].numpy()[0]
    vocabulary = tiny_vocabulary()
    expected = ids(words[:128] + words[-382:])
    assert token_ids.tolist() == expected
    assert len(expected) == 512 and vocabulary[token_ids[-1]] == "[SEP]"


def test_empty_string_gives_cls_sep(tiny):
    _, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=5)
    assert preprocessor([""])["token_ids"].numpy().tolist() == [ids([]) + [0, 0, 0]]


def test_accepts_string_list_tensor_and_runs_in_tf_data(tiny):
    _, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=9)
    eager = preprocessor(["who was galileo ?", "x"])["token_ids"].numpy()
    from_tensor = preprocessor(tf.constant(["who was galileo ?", "x"]))["token_ids"].numpy()
    dataset = tf.data.Dataset.from_tensor_slices((["who was galileo ?", "x"], [0, 1]))
    features, labels = next(iter(dataset.batch(2).map(preprocessor)))
    np.testing.assert_array_equal(eager, from_tensor)
    np.testing.assert_array_equal(eager, features["token_ids"].numpy())
    assert labels.numpy().tolist() == [0, 1]
    assert preprocessor("x")["token_ids"].shape == (1, 9)


def test_longest_padding_is_max_length_padding_trimmed(tiny):
    _, tokenizer = tiny
    texts = ["who was galileo ?", "what is the name of the city ?"]
    fixed = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=32)(texts)
    longest = kerasbert.ClassifierPreprocessor(
        tokenizer, sequence_length=32, padding="longest"
    )(texts)
    length = longest["token_ids"].shape[1]
    assert length < 32
    assert not fixed["padding_mask"].numpy()[:, length:].any()
    for name in fixed:
        np.testing.assert_array_equal(fixed[name].numpy()[:, :length], longest[name].numpy())


def test_config_round_trip(tiny):
    _, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(
        tokenizer, sequence_length=64, truncation="tail", padding="longest"
    )
    rebuilt = assert_config_round_trip(preprocessor)
    assert (rebuilt.truncation, rebuilt.padding) == ("tail", "longest")


def test_preset_round_trip_restores_vocabulary_and_settings(tiny, tmp_path):
    # The vocabulary lives in the preset's assets, not in the config.
    backbone, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(
        tokenizer, sequence_length=7, truncation="head_tail", head_length=2
    )
    backbone.save_to_preset(str(tmp_path))
    preprocessor.save_to_preset(str(tmp_path))
    restored = kerasbert.ClassifierPreprocessor.from_preset(str(tmp_path))
    np.testing.assert_array_equal(
        restored([LONG_TEXT])["token_ids"], preprocessor([LONG_TEXT])["token_ids"]
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"truncation": "middle"}, "truncation"),
        ({"sequence_length": 2}, "sequence_length"),
        ({"truncation": "head_tail", "sequence_length": 10, "head_length": 9}, "head_length"),
        ({"padding": "bucket"}, "padding"),
    ],
)
def test_invalid_arguments_are_named(tiny, kwargs, message):
    _, tokenizer = tiny
    with pytest.raises(ValueError, match=message):
        kerasbert.ClassifierPreprocessor(tokenizer, **kwargs)


def test_rejects_non_batch_input(tiny):
    _, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=8)
    with pytest.raises(ValueError, match="shape"):
        preprocessor([["a", "b"]])


def test_segments_are_full_bert_inputs_and_padding_segments_are_empty(tiny):
    _, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(
        tokenizer, sequence_length=6, truncation="segments"
    )
    features = preprocessor([LONG_TEXT, "a b"])
    assert features["token_ids"].shape == (2, 3, 6)
    assert features["token_ids"].numpy()[0].tolist() == [
        ids("a b c d".split()), ids("e f g h".split()), ids(["i", "j"]) + [0, 0]
    ]
    # A short text is exactly one segment; the rest is padding.
    assert features["token_ids"].numpy()[1, 0].tolist() == ids(["a", "b"]) + [0, 0]
    assert features["padding_mask"].numpy().any(axis=-1).tolist() == [
        [True, True, True], [True, False, False]
    ]


def test_segments_with_stride_cap_and_dynamic_padding(tiny):
    _, tokenizer = tiny
    preprocessor = kerasbert.ClassifierPreprocessor(
        tokenizer, sequence_length=6, truncation="segments", stride=1, max_segments=2,
        padding="longest",
    )
    features = preprocessor([LONG_TEXT])
    # Segments start every 3 pieces: abcd, defg, ghij; the cap keeps first and last.
    assert features["token_ids"].numpy()[0].tolist() == [
        ids("a b c d".split()), ids("g h i j".split())
    ]
    dataset = tf.data.Dataset.from_tensor_slices([LONG_TEXT, "a"]).batch(2).map(preprocessor)
    assert next(iter(dataset))["token_ids"].shape == (2, 2, 6)
