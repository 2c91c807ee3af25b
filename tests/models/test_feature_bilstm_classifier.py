import keras
import numpy as np
import pytest

import kerasbert
from tests.helpers import assert_config_round_trip
from tests.helpers import assert_saving_round_trip

TEXTS = ["the film was good", "the film was bad", "a good one", "a bad one"] * 2
LABELS = np.array([0, 1, 0, 1] * 2)


def test_backbone_stays_frozen_and_head_learns(tiny):
    backbone, tokenizer = tiny
    model = kerasbert.FeatureBiLSTMClassifier(backbone, 2, lstm_units=8, attention_dim=8)
    assert not any(w.path.startswith(("token_embedding", "transformer_layer"))
                   for w in model.trainable_weights)
    features = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)(TEXTS)
    before = [w.numpy().copy() for w in backbone.weights]
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    loss_before = model.evaluate(features, LABELS, verbose=0)[0]
    model.fit(features, LABELS, epochs=20, verbose=0)
    assert model.evaluate(features, LABELS, verbose=0)[0] < 0.5 * loss_before
    for old, new in zip(before, backbone.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_padding_does_not_change_outputs(tiny):
    backbone, tokenizer = tiny
    model = kerasbert.FeatureBiLSTMClassifier(backbone, 3, layer=1, lstm_units=8, attention_dim=8)
    fixed = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=64)(TEXTS[:3])
    longest = kerasbert.ClassifierPreprocessor(
        tokenizer, sequence_length=64, padding="longest")(TEXTS[:3])
    np.testing.assert_allclose(
        model.predict(fixed, verbose=0), model.predict(longest, verbose=0), atol=1e-5
    )
    assert_config_round_trip(model)


@pytest.mark.slow
def test_saving_round_trip(tiny, tmp_path):
    backbone, tokenizer = tiny
    model = kerasbert.FeatureBiLSTMClassifier(backbone, 2, lstm_units=8, attention_dim=8)
    features = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)(TEXTS)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(features, LABELS, epochs=1, verbose=0)
    assert_saving_round_trip(model, features, tmp_path)
