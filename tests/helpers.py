"""Shared assertions for layers and models (after keras-hub's TestCase)."""

import copy
import os

import keras
import numpy as np


def assert_config_round_trip(layer):
    """get_config → from_config → get_config is stable, and so is serialize."""
    config = layer.get_config()
    # keras-hub's from_config replaces nested configs in place: hand it a copy.
    rebuilt = layer.__class__.from_config(copy.deepcopy(config))
    assert rebuilt.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    revived = keras.saving.deserialize_keras_object(copy.deepcopy(serialized))
    assert keras.saving.serialize_keras_object(revived) == serialized
    return rebuilt


def assert_saving_round_trip(model, inputs, directory):
    """A `.keras` save/load gives the same class and the same outputs."""
    path = os.path.join(str(directory), "model.keras")
    expected = model.predict(inputs, verbose=0)
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is type(model)
    actual = restored.predict(inputs, verbose=0)
    for got, want in zip(keras.tree.flatten(actual), keras.tree.flatten(expected)):
        np.testing.assert_allclose(got, want, atol=1e-6)
    return restored
