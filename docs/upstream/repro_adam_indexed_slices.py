"""Keras 3 Adam (TensorFlow backend) squares an embedding gradient's repeated
rows one by one: the second moment of a row looked up k times is the sum of k
squares, not the square of the summed gradient. Run: python this_file.py"""

import keras
import numpy as np
import tensorflow as tf

sparse = tf.IndexedSlices(  # what tf.gather's gradient is: row 0 read twice
    tf.constant([[1.0, 1.0], [1.0, 1.0]]), tf.constant([0, 0]), tf.constant([2, 2])
)
for name, gradient in (("IndexedSlices", sparse), ("dense", tf.convert_to_tensor(sparse))):
    variable = keras.Variable(np.zeros((2, 2), "float32"))
    optimizer = keras.optimizers.Adam(0.1)
    optimizer.apply([gradient], [variable])
    print(f"{name:>13}: second moment {optimizer.variables[-1].numpy()[0]}, "
          f"first step {variable.numpy()[0]}")
