"""TF1 checkpoint conversion, checked against an independent NumPy BERT."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import kerasbert
from kerasbert.backbones import tiny_vocabulary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = {"vocab_size": len(tiny_vocabulary()), "hidden_size": 16, "num_hidden_layers": 2,
          "num_attention_heads": 4, "intermediate_size": 32, "max_position_embeddings": 64,
          "type_vocab_size": 2, "hidden_dropout_prob": 0.1}


def google_variables(rng):
    """Random variables with google-research/bert's names and shapes."""
    h, i, v = CONFIG["hidden_size"], CONFIG["intermediate_size"], CONFIG["vocab_size"]
    shapes = {
        "bert/embeddings/word_embeddings": (v, h),
        "bert/embeddings/position_embeddings": (CONFIG["max_position_embeddings"], h),
        "bert/embeddings/token_type_embeddings": (2, h),
        "bert/embeddings/LayerNorm/gamma": (h,), "bert/embeddings/LayerNorm/beta": (h,),
        "bert/pooler/dense/kernel": (h, h), "bert/pooler/dense/bias": (h,),
    }
    for layer in range(CONFIG["num_hidden_layers"]):
        p = f"bert/encoder/layer_{layer}"
        for name in ("query", "key", "value"):
            shapes[f"{p}/attention/self/{name}/kernel"] = (h, h)
            shapes[f"{p}/attention/self/{name}/bias"] = (h,)
        shapes.update({
            f"{p}/attention/output/dense/kernel": (h, h), f"{p}/attention/output/dense/bias": (h,),
            f"{p}/attention/output/LayerNorm/gamma": (h,),
            f"{p}/attention/output/LayerNorm/beta": (h,),
            f"{p}/intermediate/dense/kernel": (h, i), f"{p}/intermediate/dense/bias": (i,),
            f"{p}/output/dense/kernel": (i, h), f"{p}/output/dense/bias": (h,),
            f"{p}/output/LayerNorm/gamma": (h,), f"{p}/output/LayerNorm/beta": (h,),
        })
    values = {n: rng.normal(0, 0.3, s).astype("float32") for n, s in shapes.items()}
    for name in values:
        if name.endswith("gamma"):
            values[name] += 1.0
    return values


def write_tf1_checkpoint(directory, values):
    with tf.Graph().as_default():
        variables = [tf.compat.v1.Variable(v, name=n) for n, v in values.items()]
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, os.path.join(directory, "bert_model.ckpt"))
    (directory / "bert_config.json").write_text(json.dumps(CONFIG))
    (directory / "vocab.txt").write_text("\n".join(tiny_vocabulary()) + "\n")


def numpy_bert(values, token_ids, padding_mask):
    """BERT's forward pass written from the paper's description, in NumPy."""
    def layer_norm(x, prefix):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * values[f"{prefix}/gamma"] + values[f"{prefix}/beta"]

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))

    def dense(x, prefix):
        return x @ values[f"{prefix}/kernel"] + values[f"{prefix}/bias"]

    length = token_ids.shape[1]
    heads = CONFIG["num_attention_heads"]
    x = (values["bert/embeddings/word_embeddings"][token_ids]
         + values["bert/embeddings/position_embeddings"][:length]
         + values["bert/embeddings/token_type_embeddings"][0])
    x = layer_norm(x, "bert/embeddings/LayerNorm")
    bias = (1.0 - padding_mask[:, None, None, :]) * -1e9
    for layer in range(CONFIG["num_hidden_layers"]):
        p = f"bert/encoder/layer_{layer}"

        def split(t):
            return t.reshape(t.shape[0], length, heads, -1).transpose(0, 2, 1, 3)

        q, k, v = (split(dense(x, f"{p}/attention/self/{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1]) + bias
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        context = (weights @ v).transpose(0, 2, 1, 3).reshape(x.shape)
        x = layer_norm(x + dense(context, f"{p}/attention/output/dense"),
                       f"{p}/attention/output/LayerNorm")
        x = layer_norm(x + dense(gelu(dense(x, f"{p}/intermediate/dense")), f"{p}/output/dense"),
                       f"{p}/output/LayerNorm")
    pooled = np.tanh(dense(x[:, 0], "bert/pooler/dense"))
    return x, pooled


@pytest.mark.slow
def test_converted_checkpoint_matches_reference_bert(tmp_path):
    values = google_variables(np.random.default_rng(0))
    source = tmp_path / "google"
    source.mkdir()
    write_tf1_checkpoint(source, values)
    output = tmp_path / "converted"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "convert_checkpoint.py"),
         f"--checkpoint_dir={source}", f"--output_dir={output}"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    backbone, tokenizer = kerasbert.load_backbone(str(output))
    features = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=12)(
        ["who was galileo ?", "a b"]
    )
    outputs = backbone(features, training=False)
    expected, expected_pooled = numpy_bert(
        values, features["token_ids"].numpy(), features["padding_mask"].numpy().astype("float32")
    )
    real = features["padding_mask"].numpy().astype(bool)
    np.testing.assert_allclose(np.asarray(outputs["sequence_output"])[real], expected[real],
                               atol=1e-4)
    np.testing.assert_allclose(outputs["pooled_output"], expected_pooled, atol=1e-4)


def test_missing_files_are_named(tmp_path):
    from kerasbert.tf1_checkpoint import convert_tf1_checkpoint

    with pytest.raises(FileNotFoundError, match="bert_config.json is missing"):
        convert_tf1_checkpoint(str(tmp_path), str(tmp_path / "out"))
