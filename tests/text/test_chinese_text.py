import json
import os

import keras
import keras_hub
import numpy as np
import pytest

import kerasbert
from kerasbert.data import registry

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SPORTS, FINANCE = "球赛冠军队员比分", "股票市场银行利率"
FILLER = "今天我们的新闻报道说明这个"


def write_chinese_preset(directory):
    """A tiny random BERT with a Chinese character vocabulary, saved in the
    layout of keras-hub's `bert_base_zh` preset."""
    vocabulary = SPECIAL + list(dict.fromkeys(SPORTS + FINANCE + FILLER + "，。"))
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=False)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), num_layers=2, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=64,
    )
    backbone.save_to_preset(directory)
    tokenizer.save_to_preset(directory)
    return directory


def write_sogou(data_dir, seed):
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(data_dir, "sogou_news"), exist_ok=True)
    for split, count in (("train", 96), ("test", 32)):
        with open(os.path.join(data_dir, "sogou_news", f"{split}.jsonl"), "w") as file:
            for _ in range(count):
                label = int(rng.integers(0, 2))
                topic = (SPORTS, FINANCE)[label]
                filler = "".join(rng.choice(list(FILLER), int(rng.integers(1, 8))))
                text = f"{filler}，{topic}。"
                file.write(json.dumps({"text": text, "label": ("体育", "财经")[label]},
                                      ensure_ascii=False) + "\n")


def test_english_vocabulary_reads_chinese_as_unknown():
    _, tokenizer = kerasbert.load_backbone("tiny")
    assert kerasbert.text.unknown_piece_rate(tokenizer, ["体育新闻，比分", "what city"]) > 0.6
    assert kerasbert.text.unknown_piece_rate(tokenizer, ["what city is it"]) == 0.0
    assert kerasbert.text.unknown_piece_rate(tokenizer, []) == 0.0


def test_chinese_preset_splits_characters(tmp_path):
    directory = write_chinese_preset(str(tmp_path / "bert_zh"))
    for name in ("config.json", "tokenizer.json", "metadata.json", "model.weights.h5",
                 os.path.join("assets", "tokenizer", "vocabulary.txt")):
        assert os.path.exists(os.path.join(directory, name)), name
    backbone, tokenizer = kerasbert.load_backbone(directory)
    assert backbone.num_layers == 2
    pieces = [tokenizer.id_to_token(i) for i in tokenizer(["球赛冠军。"])[0]]
    assert pieces == ["球", "赛", "冠", "军", "。"]
    assert kerasbert.text.unknown_piece_rate(tokenizer, ["股票市场，利率"]) == 0.0


@pytest.mark.slow
def test_fine_tune_sogou_from_the_registry_with_a_chinese_vocabulary(tmp_path):
    directory = write_chinese_preset(str(tmp_path / "bert_zh"))
    write_sogou(str(tmp_path / "data"), seed=0)
    train = registry.read_named_dataset("sogou", "train", str(tmp_path / "data"))
    test = registry.read_named_dataset("sogou", "test", str(tmp_path / "data"),
                                       label_names=train.label_names)
    assert train.label_names == ["体育", "财经"]
    keras.utils.set_random_seed(0)
    metrics = kerasbert.fine_tune(
        directory, train, str(tmp_path / "run"), test=test, sequence_length=32,
        learning_rate=3e-3, batch_size=8, epochs=3, export=False, verbose=0,
    )
    assert metrics["unknown_piece_rate"] == 0.0
    assert metrics["test"]["accuracy"] > 0.9
    assert registry.DATASETS["sogou"].backbone == "bert_base_zh"
