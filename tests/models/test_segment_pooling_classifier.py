import keras
import numpy as np
import pytest
import tensorflow as tf

import kerasbert
from tests.helpers import assert_config_round_trip
from tests.helpers import assert_saving_round_trip
from tests.test_export import serve_in_subprocess

LONG = "the film was good " * 12
SHORT = "who was galileo ?"


def segmenter(tokenizer, **kwargs):
    return kerasbert.ClassifierPreprocessor(
        tokenizer, sequence_length=16, truncation="segments", **kwargs
    )


@pytest.mark.parametrize("pooling", ["mean", "max", "attention"])
def test_one_segment_document_matches_layer_selected_classifier(tiny, pooling):
    backbone, tokenizer = tiny
    segmented = kerasbert.SegmentPoolingClassifier(backbone, 3, pooling=pooling, layers="last4")
    flat = kerasbert.LayerSelectedClassifier(backbone, 3, layers="last4")
    flat.get_layer("logits").set_weights(segmented.get_layer("logits").get_weights())
    features = segmenter(tokenizer)([SHORT])
    assert features["token_ids"].shape[1] == 1
    flat_features = {k: v[:, 0] for k, v in features.items()}
    np.testing.assert_allclose(
        segmented.predict(features, verbose=0), flat.predict(flat_features, verbose=0), atol=1e-5
    )


@pytest.mark.parametrize("pooling", ["mean", "max", "attention"])
def test_padding_segments_change_no_output(tiny, pooling):
    backbone, tokenizer = tiny
    model = kerasbert.SegmentPoolingClassifier(backbone, 2, pooling=pooling)
    preprocessor = segmenter(tokenizer)
    alone = model.predict(preprocessor([SHORT]), verbose=0)
    together = preprocessor([SHORT, LONG])
    assert together["token_ids"].shape[1] > 1
    batched = model.predict(together, verbose=0)
    np.testing.assert_allclose(batched[0], alone[0], atol=1e-5)
    extra = {k: tf.pad(v, [[0, 0], [0, 3], [0, 0]]) for k, v in together.items()}
    np.testing.assert_allclose(model.predict(extra, verbose=0), batched, atol=1e-5)


def test_segments_are_pooled_and_gradients_reach_backbone(tiny):
    backbone, tokenizer = tiny
    model = kerasbert.SegmentPoolingClassifier(backbone, 2, pooling="attention")
    features = segmenter(tokenizer)([LONG, SHORT])
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(features, training=True) ** 2)
    grads = dict(zip([v.path for v in model.trainable_variables],
                     tape.gradient(loss, model.trainable_variables)))
    for path in ("token_embedding/embeddings", "transformer_layer_0/self_attention_layer/query/kernel",
                 "attention_pooler/score/kernel", "logits/kernel"):
        assert grads[path] is not None, path
        assert float(tf.reduce_max(tf.abs(tf.convert_to_tensor(grads[path])))) > 0, path
    assert not any(p.startswith("pooled_dense") for p in grads)


def test_invalid_arguments(tiny):
    backbone, _ = tiny
    with pytest.raises(ValueError, match="pooling"):
        kerasbert.SegmentPoolingClassifier(backbone, 2, pooling="sum")
    with pytest.raises(ValueError, match="combine"):
        kerasbert.SegmentPoolingClassifier(backbone, 2, layers="all", combine="add")


def test_config_round_trip(tiny):
    backbone, _ = tiny
    model = kerasbert.SegmentPoolingClassifier(backbone, 4, pooling="max", layers=[1, 2])
    assert assert_config_round_trip(model).pooling == "max"


def test_bucketed_batches_pad_segments_per_batch(tiny):
    _, tokenizer = tiny
    texts = [SHORT, LONG, SHORT, LONG * 3, SHORT]
    batches = kerasbert.make_batches(
        tf.data.Dataset.from_tensor_slices((texts, list(range(5)))), segmenter(tokenizer), 2,
        bucket=True,
    )
    seen = []
    for features, labels in batches:
        real = features["padding_mask"].numpy().any(axis=-1).sum(axis=1)
        assert features["token_ids"].shape[1] == real.max()  # padded to the batch's most
        seen += labels.numpy().tolist()
    assert sorted(seen) == list(range(5))


@pytest.mark.slow
def test_saving_and_raw_text_export(tiny, tmp_path):
    backbone, tokenizer = tiny
    preprocessor = segmenter(tokenizer, max_segments=4)
    model = kerasbert.SegmentPoolingClassifier(backbone, 2, pooling="attention")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    features = preprocessor([LONG, SHORT])
    model.fit(features, np.array([0, 1]), epochs=1, verbose=0)
    assert_saving_round_trip(model, features, tmp_path)

    kerasbert.export_serving(model, preprocessor, str(tmp_path / "saved"), ["neg", "pos"])
    texts = [LONG * 5, SHORT, ""]
    served = serve_in_subprocess(tmp_path / "saved", texts)
    logits = model.predict(preprocessor(texts), verbose=0)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
