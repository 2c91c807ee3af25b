"""Shared assertions for layers and models (after keras-hub's TestCase)."""

import copy
import json
import os
import socket
import subprocess
import sys
import time

import keras
import numpy as np


def assert_config_round_trip(layer):
    """get_config → from_config → get_config is stable, and so is serialize."""
    config = layer.get_config()
    # keras-hub's from_config replaces nested configs in place: hand it a copy.
    rebuilt = layer.__class__.from_config(copy.deepcopy(config))
    assert rebuilt.get_config() == config
    serialized = _without_compile_config(keras.saving.serialize_keras_object(layer))
    revived = keras.saving.deserialize_keras_object(copy.deepcopy(serialized))
    assert _without_compile_config(keras.saving.serialize_keras_object(revived)) == serialized
    return rebuilt


def _without_compile_config(serialized):
    # keras-hub tasks compile themselves with defaults when built, so the
    # compile config (with its auto-numbered optimizer name) is not the model's.
    return {k: v for k, v in serialized.items() if k != "compile_config"}


def assert_preset_round_trip(model, inputs, directory):
    """`save_to_preset` then `kerasbert.load_classifier` gives the same class,
    label names and outputs on raw `inputs` (keras-hub's saving test, for
    presets)."""
    import kerasbert

    expected = model.predict(inputs, verbose=0)
    model.save_to_preset(str(directory))
    restored = kerasbert.load_classifier(str(directory))
    assert type(restored) is type(model)
    assert getattr(restored, "label_names", None) == getattr(model, "label_names", None)
    assert restored.get_config() == model.get_config()
    actual = restored.predict(inputs, verbose=0)
    for got, want in zip(keras.tree.flatten(actual), keras.tree.flatten(expected)):
        np.testing.assert_allclose(got, want, atol=1e-6)
    return restored


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


def free_ports(count):
    """`count` distinct TCP ports free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def die_with_the_other_worker(directory, index):
    """SIGKILLs this worker once the other worker has reached this call too.

    A worker that dies the instant its own step ends can still owe its peer
    the last chunk of a collective (the peer pulls it over gRPC: reading a
    metric is an all-reduce), and the peer then fails instead of being
    killed. Each worker marks its arrival with a file in `directory` and
    waits (60 s at most) for the other's before dying. Worker scripts take
    it with `inspect.getsource`.
    """
    import os  # the function also runs pasted into worker scripts
    import time

    open(os.path.join(directory, f"arrived_{index}"), "w").close()
    other = os.path.join(directory, f"arrived_{1 - int(index)}")
    deadline = time.time() + 60
    while not os.path.exists(other) and time.time() < deadline:
        time.sleep(0.01)
    os.kill(os.getpid(), 9)


def start_two_workers(script, *args):
    """Start `script` as two `MultiWorkerMirroredStrategy` workers on
    127.0.0.1: each a fresh interpreter with its own `TF_CONFIG` (worker 0
    is the chief) and `sys.argv = ["-c", WORKER_INDEX, *args]`. Returns the
    two `subprocess.Popen`s (text pipes for stdout and stderr)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    processes = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        processes.append(subprocess.Popen(
            [sys.executable, "-c", script, str(index), *args], text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, TF_CONFIG=json.dumps(config), TF_CPP_MIN_LOG_LEVEL="2"),
        ))
    return processes


def finish_workers(processes, timeout=300):
    """Wait for `processes` (all killed once `timeout` seconds pass); returns
    their `(returncode, stdout, stderr)`."""
    results = []
    deadline = time.time() + timeout
    for process in processes:
        try:
            out, err = process.communicate(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            out, err = process.communicate()
            err += f"\n(killed after {timeout} s)"
        results.append((process.returncode, out, err))
    return results


def run_two_workers(script, *args, timeout=300):
    """Run `script` as two workers (see `start_two_workers`) to the end;
    returns their `(returncode, stdout, stderr)`."""
    return finish_workers(start_two_workers(script, *args), timeout)
