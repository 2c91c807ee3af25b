"""Convert original Google (TF1) BERT checkpoints into keras-hub presets.

google-research/bert releases `bert_model.ckpt.*`, `bert_config.json` and
`vocab.txt`. `convert_tf1_checkpoint` builds a keras-hub `BertBackbone` of the
same shape, copies every variable into it and writes a preset directory that
`kerasbert.load_backbone(directory)` loads.
"""

import json
import os

import keras_hub
import numpy as np
import tensorflow as tf


def _checkpoint_prefix(path):
    if os.path.isdir(path):
        prefix = tf.train.latest_checkpoint(path) or os.path.join(path, "bert_model.ckpt")
    else:
        prefix = path
    if not tf.io.gfile.glob(prefix + ".index"):
        raise FileNotFoundError(
            f"No TF1 checkpoint at {prefix!r} (expected {prefix}.index and .data-* files)."
        )
    return prefix


def _weight_sources(num_layers, num_heads, hidden_dim):
    """keras-hub weight path → (TF1 variable name, target shape or None)."""
    head_dim = hidden_dim // num_heads
    sources = {
        "token_embedding/embeddings": ("bert/embeddings/word_embeddings", None),
        "position_embedding/embeddings": ("bert/embeddings/position_embeddings", None),
        "segment_embedding/embeddings": ("bert/embeddings/token_type_embeddings", None),
        "embeddings_layer_norm/gamma": ("bert/embeddings/LayerNorm/gamma", None),
        "embeddings_layer_norm/beta": ("bert/embeddings/LayerNorm/beta", None),
        "pooled_dense/kernel": ("bert/pooler/dense/kernel", None),
        "pooled_dense/bias": ("bert/pooler/dense/bias", None),
    }
    for i in range(num_layers):
        ours, theirs = f"transformer_layer_{i}", f"bert/encoder/layer_{i}"
        for projection in ("query", "key", "value"):
            sources[f"{ours}/self_attention_layer/{projection}/kernel"] = (
                f"{theirs}/attention/self/{projection}/kernel", (hidden_dim, num_heads, head_dim))
            sources[f"{ours}/self_attention_layer/{projection}/bias"] = (
                f"{theirs}/attention/self/{projection}/bias", (num_heads, head_dim))
        sources.update({
            f"{ours}/self_attention_layer/attention_output/kernel": (
                f"{theirs}/attention/output/dense/kernel", (num_heads, head_dim, hidden_dim)),
            f"{ours}/self_attention_layer/attention_output/bias": (
                f"{theirs}/attention/output/dense/bias", None),
            f"{ours}/self_attention_layer_norm/gamma": (
                f"{theirs}/attention/output/LayerNorm/gamma", None),
            f"{ours}/self_attention_layer_norm/beta": (
                f"{theirs}/attention/output/LayerNorm/beta", None),
            f"{ours}/feedforward_intermediate_dense/kernel": (
                f"{theirs}/intermediate/dense/kernel", None),
            f"{ours}/feedforward_intermediate_dense/bias": (
                f"{theirs}/intermediate/dense/bias", None),
            f"{ours}/feedforward_output_dense/kernel": (f"{theirs}/output/dense/kernel", None),
            f"{ours}/feedforward_output_dense/bias": (f"{theirs}/output/dense/bias", None),
            f"{ours}/feedforward_layer_norm/gamma": (f"{theirs}/output/LayerNorm/gamma", None),
            f"{ours}/feedforward_layer_norm/beta": (f"{theirs}/output/LayerNorm/beta", None),
        })
    return sources


def convert_tf1_checkpoint(checkpoint_dir, output_dir, lowercase=True):
    """Write a keras-hub preset of an original TF1 BERT checkpoint.

    Args:
        checkpoint_dir: str. A directory with `bert_model.ckpt.*`,
            `bert_config.json` and `vocab.txt` (Google's release layout).
        output_dir: str. Where the preset goes.
        lowercase: bool. Whether the vocabulary is uncased (the `uncased_*`
            releases). Defaults to `True`.

    Returns:
        `output_dir`.

    Examples:
    ```python
    # kerasbert.tf1_checkpoint.convert_tf1_checkpoint("uncased_L-12_H-768_A-12", "bert_base")
    # backbone, tokenizer = kerasbert.load_backbone("bert_base")
    ```
    """
    config_path = os.path.join(checkpoint_dir, "bert_config.json")
    vocabulary_path = os.path.join(checkpoint_dir, "vocab.txt")
    for required in (config_path, vocabulary_path):
        if not os.path.isfile(required):
            raise FileNotFoundError(
                f"{required} is missing: a TF1 BERT checkpoint directory holds "
                "bert_model.ckpt.*, bert_config.json and vocab.txt."
            )
    with open(config_path) as file:
        config = json.load(file)
    reader = tf.train.load_checkpoint(_checkpoint_prefix(checkpoint_dir))
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=config["vocab_size"],
        num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        hidden_dim=config["hidden_size"],
        intermediate_dim=config["intermediate_size"],
        dropout=config.get("hidden_dropout_prob", 0.1),
        max_sequence_length=config.get("max_position_embeddings", 512),
        num_segments=config.get("type_vocab_size", 2),
    )
    sources = _weight_sources(
        config["num_hidden_layers"], config["num_attention_heads"], config["hidden_size"]
    )
    available = set(reader.get_variable_to_shape_map())
    for weight in backbone.weights:
        name, shape = sources[weight.path]
        if name not in available:
            raise ValueError(f"The checkpoint has no variable {name!r} (for {weight.path}).")
        value = reader.get_tensor(name)
        weight.assign(np.reshape(value, shape) if shape else value)
    with open(vocabulary_path, encoding="utf-8") as file:
        vocabulary = [line.rstrip("\n") for line in file]
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=lowercase)
    backbone.save_to_preset(output_dir)
    tokenizer.save_to_preset(output_dir)
    return output_dir
