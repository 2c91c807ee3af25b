import json

import numpy as np
import pytest

import kerasbert


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


RECORDS = [
    {"text": "who was galileo ?", "label": "HUM"},
    {"text": "what is an atom ?", "label": "DESC"},
    {"text": "where is aspen ?", "label": "LOC"},
    {"text": "who wrote hamlet ?", "label": "HUM"},
]


def test_jsonl_labels_index_sorted_vocabulary(tmp_path):
    data = kerasbert.read_labeled_texts(write_jsonl(tmp_path / "train.jsonl", RECORDS))
    assert data.label_names == ["DESC", "HUM", "LOC"]
    assert data.labels.tolist() == [1, 0, 2, 1]
    assert data.texts[0] == "who was galileo ?"


def test_load_dataset_returns_tf_dataset_and_names(tmp_path):
    dataset, names = kerasbert.load_dataset(write_jsonl(tmp_path / "x.jsonl", RECORDS))
    pairs = [(t.numpy().decode(), int(l)) for t, l in dataset]
    assert pairs[1] == ("what is an atom ?", names.index("DESC"))
    assert len(pairs) == 4


def test_directory_split_and_csv_with_several_text_fields(tmp_path):
    (tmp_path / "test.csv").write_text(
        'label,title,body\n2,Great film,"Loved it, truly"\n1,Bad,"Dull, ""long"""\n',
        encoding="utf-8",
    )
    data = kerasbert.read_labeled_texts(
        str(tmp_path), "test", text_fields=("title", "body"), label_field="label"
    )
    assert data.texts == ["Great film Loved it, truly", 'Bad Dull, "long"']
    assert data.label_names == ["1", "2"]


def test_numeric_labels_sort_as_numbers(tmp_path):
    (tmp_path / "a.tsv").write_text(
        "text\tlabel\n" + "".join(f"t{i}\t{i}\n" for i in (10, 2, 1)), encoding="utf-8"
    )
    assert kerasbert.read_labeled_texts(str(tmp_path / "a.tsv")).label_names == ["1", "2", "10"]


def test_unknown_label_in_test_data_is_named(tmp_path):
    path = write_jsonl(tmp_path / "test.jsonl", [{"text": "x", "label": "NEW"}])
    with pytest.raises(ValueError, match=r"\['NEW'\].*not in the label vocabulary"):
        kerasbert.read_labeled_texts(path, label_names=["DESC", "HUM"])


def test_missing_file_and_missing_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        kerasbert.read_labeled_texts(str(tmp_path / "nowhere.jsonl"))
    with pytest.raises(FileNotFoundError, match="validation.jsonl"):
        kerasbert.read_labeled_texts(str(tmp_path), "validation")


def test_missing_field_names_line_and_available_fields(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [RECORDS[0], {"sentence": "x", "label": "HUM"}])
    with pytest.raises(ValueError, match=r"a.jsonl:2: missing field\(s\) \['text'\].*'sentence'"):
        kerasbert.read_labeled_texts(path)


def test_empty_text_is_an_error_unless_kept(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [RECORDS[0], {"text": "  ", "label": "HUM"}])
    with pytest.raises(ValueError, match="a.jsonl:2: empty text"):
        kerasbert.read_labeled_texts(path)
    assert kerasbert.read_labeled_texts(path, empty_text="keep").texts[1] == ""


def test_invalid_utf8_names_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"text": "ok", "label": "A"}\n{"text": "caf\xe9", "label": "A"}\n')
    with pytest.raises(ValueError, match="a.jsonl:2: invalid UTF-8"):
        kerasbert.read_labeled_texts(str(path))


def test_empty_dataset_and_bad_json(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no examples"):
        kerasbert.read_labeled_texts(str(tmp_path / "empty.jsonl"))
    (tmp_path / "bad.jsonl").write_text('{"text": \n', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:1: not valid JSON"):
        kerasbert.read_labeled_texts(str(tmp_path / "bad.jsonl"))


def test_unknown_spec_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="TFDS name"):
        kerasbert.read_labeled_texts("no_such_dataset_anywhere")


def test_validation_carve_is_reproducible_and_complete(tmp_path):
    records = [{"text": f"text {i}", "label": str(i % 3)} for i in range(100)]
    data = kerasbert.read_labeled_texts(write_jsonl(tmp_path / "a.jsonl", records))
    rest, carved = data.split(0.1, seed=3)
    again_rest, again_carved = data.split(0.1, seed=3)
    assert len(carved) == 10 and len(rest) == 90
    assert carved.texts == again_carved.texts and rest.texts == again_rest.texts
    assert sorted(rest.texts + carved.texts) == sorted(data.texts)
    assert carved.texts != data.split(0.1, seed=4)[1].texts
    np.testing.assert_array_equal(
        carved.labels, [data.labels[data.texts.index(t)] for t in carved.texts]
    )


@pytest.mark.slow
def test_tfds_dataset_read_from_local_data_dir(tmp_path):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    examples = {"text": ["good film", "bad film", "fine"], "label": [1, 0, 1]}
    tfds.dataset_builders.store_as_tfds_dataset(
        name="kerasbert_toy_reviews",
        version="1.0.0",
        data_dir=str(tmp_path),
        split_datasets={"train": tf.data.Dataset.from_tensor_slices(examples)},
        features=tfds.features.FeaturesDict(
            {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=["neg", "pos"])}
        ),
    )
    data = kerasbert.read_labeled_texts(
        "tfds:kerasbert_toy_reviews", "train", data_dir=str(tmp_path)
    )
    assert data.label_names == ["neg", "pos"]
    assert sorted(zip(data.texts, data.labels.tolist())) == [
        ("bad film", 0), ("fine", 1), ("good film", 1)
    ]
    with pytest.raises(FileNotFoundError, match="never downloads"):
        kerasbert.read_labeled_texts("tfds:kerasbert_absent", data_dir=str(tmp_path))


def test_sample_is_reproducible_subset(tmp_path):
    records = [{"text": f"text {i}", "label": str(i % 2)} for i in range(50)]
    data = kerasbert.read_labeled_texts(write_jsonl(tmp_path / "a.jsonl", records))
    sample = data.sample(10, seed=1)
    assert sample.texts == data.sample(10, seed=1).texts
    assert len(set(sample.texts)) == 10 and set(sample.texts) <= set(data.texts)
    assert sample.texts == sorted(sample.texts, key=data.texts.index)  # file order kept
    with pytest.raises(ValueError, match="Cannot sample 51"):
        data.sample(51)


def test_sample_per_class_for_few_shot(tmp_path):
    records = [{"text": f"text {i}", "label": "ab"[i % 3 == 0]} for i in range(30)]
    data = kerasbert.read_labeled_texts(write_jsonl(tmp_path / "a.jsonl", records))
    few = data.sample_per_class(4, seed=2)
    assert np.bincount(few.labels).tolist() == [4, 4]
    assert few.texts == data.sample_per_class(4, seed=2).texts
    with pytest.raises(ValueError, match="Class 'b' .* has 10 examples; 11 per class"):
        data.sample_per_class(11)


def test_in_memory_texts_that_are_no_text_are_named_by_example():
    import numpy as np

    from kerasbert.data.datasets import LabeledTexts

    labels = np.array([0, 1], np.int32)
    with pytest.raises(ValueError, match=r"^mine \(example 1\): the text holds a lone surrogate"):
        LabeledTexts(["fine", "bad \ud800"], labels, ["a", "b"], "mine")
    with pytest.raises(ValueError, match=r"^mine \(example 0\): a text must be a string; it is "
                                         r"int 3"):
        LabeledTexts([3, "fine"], labels, ["a", "b"], "mine")
