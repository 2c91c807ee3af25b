import os

import keras
import numpy as np
import pytest

import kerasbert
from kerasbert import backbones


def test_tiny_backbone_is_small_and_tokenizes_without_unknowns():
    backbone, tokenizer = kerasbert.load_backbone("tiny")
    assert (backbone.num_layers, backbone.hidden_dim) == (2, 64)
    assert backbone.vocabulary_size == tokenizer.vocabulary_size()
    ids = tokenizer(["what is 42 % of 7,000?"])
    unknown = tokenizer.token_to_id("[UNK]")
    assert unknown not in np.asarray(ids[0]).tolist()


def test_local_keras_hub_preset_directory_round_trip(tmp_path):
    keras.utils.set_random_seed(2)
    backbone, tokenizer = kerasbert.load_backbone("tiny")
    backbone.save_to_preset(str(tmp_path))
    tokenizer.save_to_preset(str(tmp_path))
    restored, restored_tokenizer = kerasbert.load_backbone(str(tmp_path))
    features = kerasbert.ClassifierPreprocessor(restored_tokenizer, sequence_length=12)(
        ["who was galileo ?"]
    )
    np.testing.assert_allclose(
        restored(features)["sequence_output"], backbone(features)["sequence_output"], atol=1e-6
    )


def test_directory_that_is_no_checkpoint_lists_its_files(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"neither a keras-hub preset.*weights.bin"):
        kerasbert.load_backbone(str(tmp_path))


def test_unresolvable_spec_says_what_was_tried():
    with pytest.raises(ValueError, match=r"Tried, in order.*local directory.*hub handle.*preset name"):
        kerasbert.load_backbone("no/such/checkpoint")
    with pytest.raises(ValueError, match="non-empty string"):
        kerasbert.load_backbone("")


@pytest.mark.slow
def test_hub_handle_offline_fails_clearly(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="Could not load backbone 'hf://"):
        kerasbert.load_backbone("hf://google-bert/bert-no-such-model-kerasbert")


@pytest.mark.slow
def test_minilm_checkpoint_loads_real_weights():
    directory = backbones.minilm_directory()
    assert os.path.exists(os.path.join(directory, "model.safetensors"))
    backbone, tokenizer = kerasbert.load_backbone("minilm")
    assert (backbone.num_layers, backbone.hidden_dim) == (6, 384)
    features = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)(
        ["a man is playing a guitar", "a person plays the guitar", "the stock market fell"]
    )
    hidden = np.asarray(backbone(features)["sequence_output"])
    mask = np.asarray(features["padding_mask"])[..., None]
    # all-MiniLM-L6-v2 is a sentence encoder: mean-pooled embeddings of
    # paraphrases are closer than those of unrelated sentences. Random
    # weights would not show this.
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    assert pooled[0] @ pooled[1] > pooled[0] @ pooled[2] + 0.3


@pytest.mark.parametrize("content, message", [
    ("null", r"config.json must hold a JSON object; save the preset again"),
    ('{"class_name": "BertBackbone", "config": 5}', r"config.json is not a saved Keras object"),
])
def test_a_damaged_preset_backbone_is_one_line_naming_the_file(tmp_path, content, message):
    backbone, tokenizer = kerasbert.load_backbone("tiny")
    backbone.save_to_preset(str(tmp_path))
    tokenizer.save_to_preset(str(tmp_path))
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(ValueError, match=rf"^{tmp_path}/{message}"):
        kerasbert.load_backbone(str(tmp_path))
