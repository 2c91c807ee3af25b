import json

import numpy as np
import pytest
import tensorflow as tf

from kerasbert.data import corpus
from kerasbert.data.generator_dataset import generator_dataset
from kerasbert.data.generator_dataset import generator_errors_raised


def test_split_sentences_english_and_chinese():
    text = "It rains. Really? Yes!  我很好。你呢？好！"
    assert corpus.split_sentences(text) == [
        "It rains.", "Really?", "Yes!", "我很好。", "你呢？", "好！"
    ]
    assert corpus.split_sentences("  ") == []


def test_documents_from_txt_blank_lines_and_jsonl(tmp_path):
    (tmp_path / "a.txt").write_text("first line.\nsame doc.\n\n\nsecond doc.\n")
    assert list(corpus.iter_documents(str(tmp_path / "a.txt"))) == [
        "first line. same doc.", "second doc."
    ]
    (tmp_path / "b.jsonl").write_text(json.dumps({"title": "T", "body": "B."}) + "\n")
    assert list(corpus.iter_documents(str(tmp_path / "b.jsonl"), ("title", "body"))) == ["T B."]
    with pytest.raises(ValueError, match=r"b.jsonl:1: missing field\(s\) \['text'\]"):
        list(corpus.iter_documents(str(tmp_path / "b.jsonl")))


def test_documents_stream_lazily(tmp_path):
    # Invalid bytes at the end are never read when only the start is used.
    path = tmp_path / "big.txt"
    path.write_bytes(b"doc one.\n\ndoc two.\n\n" + b"x" * 100_000 + b"\n\xff\xfe\n")
    documents = corpus.iter_documents(str(path))
    assert [next(documents), next(documents)] == ["doc one.", "doc two."]
    with pytest.raises(ValueError, match="invalid UTF-8"):
        list(documents)


def test_parse_source_weights():
    assert corpus.parse_source("a.jsonl@2.5") == ("a.jsonl", 2.5)
    assert corpus.parse_source("tfds:imdb_reviews") == ("tfds:imdb_reviews", 1.0)
    assert corpus.parse_source("me@home.txt") == ("me@home.txt", 1.0)
    with pytest.raises(ValueError, match="positive"):
        corpus.parse_source("a.txt@0")


def test_packing_respects_word_piece_budget(tiny):
    _, tokenizer = tiny
    document = " ".join(f"sentence {'a ' * (i % 5)}number {i}." for i in range(40))
    packer = corpus.SentencePacker(tokenizer, max_pieces=30)
    runs = list(packer.runs(document))
    assert " ".join(s for run in runs for s in run) == " ".join(corpus.split_sentences(document))
    for run in runs:
        assert sum(len(ids) for ids in tokenizer(run)) <= 30 or len(run) == 1
    assert len(runs) > 1


def test_nsp_pairs_half_random_and_true_pairs_are_continuations(tiny):
    _, tokenizer = tiny
    documents = [f"doc {d} one. doc {d} two. doc {d} three." for d in range(400)]
    examples = list(corpus.SentencePacker(tokenizer, 60, nsp=True, seed=1).examples(documents))
    labels = np.array([label for _, _, label in examples])
    assert 0.4 < labels.mean() < 0.6
    for a, b, label in examples:
        same_doc = a.split()[1] == b.split()[1]
        assert same_doc == (label == 0)


def test_sources_mix_by_weight(tmp_path, tiny):
    _, tokenizer = tiny
    for name in ("x", "y"):
        (tmp_path / f"{name}.txt").write_text("".join(f"{name} {i}.\n\n" for i in range(50)))
    dataset = corpus.pretraining_dataset(
        [(str(tmp_path / "x.txt"), 3.0), (str(tmp_path / "y.txt"), 1.0)], tokenizer, 16, seed=0
    )
    drawn = [a.numpy().decode()[0] for a, _, _ in dataset.take(2000)]
    assert abs(drawn.count("x") / 2000 - 0.75) < 0.04
    again = [a.numpy().decode()[0] for a, _, _ in dataset.take(2000)]
    assert drawn == again  # seeded


@pytest.mark.slow
def test_documents_from_local_tfds_dataset(tmp_path):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    tfds.dataset_builders.store_as_tfds_dataset(
        name="kerasbert_toy_corpus", version="1.0.0", data_dir=str(tmp_path),
        split_datasets={"train": tf.data.Dataset.from_tensor_slices(
            {"text": ["first doc. two.", "second doc."]})},
        features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
    )
    documents = sorted(corpus.iter_documents("tfds:kerasbert_toy_corpus", data_dir=str(tmp_path)))
    assert documents == ["first doc. two.", "second doc."]


def test_a_corpus_file_changed_mid_run_stops_the_stream_in_one_line(tmp_path, tiny):
    _, tokenizer = tiny
    path = tmp_path / "corpus.txt"
    path.write_text("the film was good .\n\nwho was galileo ?\n\n")
    stream = iter(corpus.pretraining_dataset([(str(path), 1.0)], tokenizer, sequence_length=16))
    next(stream)  # the first pass has started: the file's identity is taken
    with path.open("a") as file:
        file.write("a third document that would be mixed in .\n\n")
    with pytest.raises(ValueError, match=r"corpus.txt' changed while the run read it .* "
                                         r"Restore it, or start over with --overwrite"):
        with generator_errors_raised():
            for _ in range(10):
                next(stream)


def test_a_generators_own_error_replaces_tensorflows(tmp_path):
    def generate():
        yield "fine"
        raise ValueError("corpus.txt:2: invalid UTF-8")

    dataset = generator_dataset(generate, tf.TensorSpec([], tf.string))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Traceback"):
        list(dataset)  # what TensorFlow raises: the traceback inside the message
    with pytest.raises(ValueError, match=r"^corpus.txt:2: invalid UTF-8$") as error:
        with generator_errors_raised():
            list(dataset)
    assert isinstance(error.value.__cause__, tf.errors.InvalidArgumentError)
    with pytest.raises(tf.errors.InvalidArgumentError):  # other errors pass through
        with generator_errors_raised():
            tf.debugging.assert_equal(1, 2)
