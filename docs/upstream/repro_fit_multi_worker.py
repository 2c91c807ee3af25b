"""Keras 3 `fit` under MultiWorkerMirroredStrategy: the minimal reproduction.

Run two workers on this machine (each with its own TF_CONFIG):

  python docs/upstream/repro_fit_multi_worker.py 0 & python docs/upstream/repro_fit_multi_worker.py 1

Each worker prints the error `fit` raises (see keras-multi-worker.md).
"""

import json
import os
import sys

PORTS = (23456, 23457)
os.environ["TF_CONFIG"] = json.dumps({
    "cluster": {"worker": [f"127.0.0.1:{p}" for p in PORTS]},
    "task": {"type": "worker", "index": int(sys.argv[1])},
})
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
x = np.ones((16, 4), "float32")
y = np.zeros((16, 2), "float32")
dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
try:
    model.fit(dataset, epochs=1, verbose=0)
    print(f"worker {sys.argv[1]}: fit trained")
except Exception as error:  # noqa: BLE001
    print(f"worker {sys.argv[1]}: {type(error).__name__}: {str(error).splitlines()[0]}")
