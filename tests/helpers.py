"""Shared assertions for layers and models (after keras-hub's TestCase)."""

import copy
import os
import subprocess
import sys

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


# Prepended to subprocess scripts: one physical CPU split into two logical
# devices, so that MirroredStrategy has two replicas.
TWO_CPUS = """import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""


def run_on_two_cpus(script, *args):
    """Run `script` (with `args` in `sys.argv`) in a fresh interpreter that
    has two logical CPU devices; returns the `CompletedProcess`."""
    return subprocess.run(
        [sys.executable, "-c", TWO_CPUS + script, *args], capture_output=True, text=True,
        timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
