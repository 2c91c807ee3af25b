"""The machine's limit for tools/benchmark.py: GEMM GFLOP/s, and model FLOPs.

A BERT layer's time is its matrix products; the fastest a machine runs the
products of a BERT's shapes is the ceiling every path (training, evaluation,
serving) is measured against. fp32: TensorFlow's matmul (oneDNN). int8: the
LiteRT runtime's fully-connected op with int8 weights and activations
quantized per batch (XNNPACK), the kernel the int8 classifier runs.
"""

import os
import tempfile
import time

import numpy as np

# Rows of the products (word pieces of a batch): the ceiling is the best
# of these; and the (in, out) sizes of a BERT layer's dense products, e.g.
# 384 → 1536 → 384 for MiniLM.
GEMM_ROWS = (1024, 4096, 16384)


def _bert_shapes(hidden):
    return [(hidden, hidden), (hidden, 4 * hidden), (4 * hidden, hidden)]


def _median_gflops(run, flops, repeats):
    run()  # warm up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return flops / float(np.median(seconds)) / 1e9


def fp32_gemm_gflops(hidden=384, repeats=9):
    """TensorFlow's float32 matmul on a BERT layer's shapes: GFLOP/s, the
    median of `repeats` timings, the best over `GEMM_ROWS`."""
    return max(_fp32_gemm_gflops(rows, hidden, repeats) for rows in GEMM_ROWS)


def int8_gemm_gflops(hidden=384, repeats=9, num_threads=None):
    """LiteRT's dynamic-range int8 fully-connected op (what
    `kerasbert.export_int8` models run) on a BERT layer's shapes: GFLOP/s,
    the median of `repeats` timings, the best over `GEMM_ROWS`."""
    return max(_int8_gemm_gflops(rows, hidden, repeats, num_threads) for rows in GEMM_ROWS)


def _fp32_gemm_gflops(rows, hidden, repeats):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((rows, hidden), dtype=np.float32))
    weights = [tf.constant(rng.standard_normal(shape, dtype=np.float32))
               for shape in _bert_shapes(hidden)]

    @tf.function
    def layer(x):
        # In → out products chained as in a layer, one result kept live.
        a = tf.matmul(x, weights[0])
        b = tf.matmul(x, weights[1])
        return tf.reduce_sum(a) + tf.reduce_sum(tf.matmul(b, weights[2]))

    flops = sum(2 * rows * n_in * n_out for n_in, n_out in _bert_shapes(hidden))
    return _median_gflops(lambda: layer(x).numpy(), flops, repeats)


def _int8_gemm_gflops(rows, hidden, repeats, num_threads):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from kerasbert.int8 import available_cores

    rng = np.random.default_rng(0)
    weights = [tf.constant(rng.standard_normal(shape, dtype=np.float32))
               for shape in _bert_shapes(hidden)]

    class Layer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([rows, hidden], tf.float32)])
        def __call__(self, x):
            a = tf.matmul(x, weights[0])
            b = tf.matmul(x, weights[1])
            return tf.reduce_sum(a) + tf.reduce_sum(tf.matmul(b, weights[2]))

    layer = Layer()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [layer.__call__.get_concrete_function()], layer)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "gemm.tflite")
        with open(path, "wb") as file:
            file.write(converter.convert())
        interpreter = Interpreter(model_path=path,
                                  num_threads=num_threads or available_cores())
    interpreter.allocate_tensors()
    x = rng.standard_normal((rows, hidden), dtype=np.float32)
    index = interpreter.get_input_details()[0]["index"]

    def run():
        interpreter.set_tensor(index, x)
        interpreter.invoke()

    flops = sum(2 * rows * n_in * n_out for n_in, n_out in _bert_shapes(hidden))
    return _median_gflops(run, flops, repeats)


def non_embedding_parameters(backbone):
    """Weights of the transformer layers, which every word piece's forward
    pass multiplies (embedding tables are looked up, and the pooler, which
    the classifiers do not read, is left out)."""
    return sum(int(np.prod(v.shape)) for layer in backbone.layers
               if layer.name.startswith("transformer_layer_") for v in layer.weights)


def model_flops(backbone, lengths, training=False, head_parameters=0):
    """FLOPs of the forward pass (×3 with the backward) over texts of
    `lengths` word pieces: 2·N·n for the products with N non-embedding
    weights, plus 4·layers·hidden·n² for attention scores and their sum."""
    lengths = np.asarray(lengths, dtype=np.float64)
    weights = non_embedding_parameters(backbone) + head_parameters
    forward = float(np.sum(2 * weights * lengths
                           + 4 * backbone.num_layers * backbone.hidden_dim * lengths**2))
    return 3 * forward if training else forward
