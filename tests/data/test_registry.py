import pytest

from kerasbert.data import registry


def write_zhang(directory, rows, classes=None):
    directory.mkdir(parents=True)
    (directory / "train.csv").write_text("".join(rows), encoding="utf-8")
    if classes:
        (directory / "classes.txt").write_text("\n".join(classes) + "\n")


def test_zhang_csv_one_based_labels_fields_and_classes(tmp_path):
    write_zhang(tmp_path / "ag_news_csv", [
        '"3","Wall St. Bears","Short-sellers\\nsee green"\n',
        '"1","World news","Peace talks"\n',
    ], classes=["World", "Sports", "Business", "Sci/Tech"])
    data = registry.read_named_dataset("ag_news", "train", str(tmp_path))
    assert data.label_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert data.labels.tolist() == [2, 0]
    assert data.texts[0] == "Wall St. Bears Short-sellers\nsee green"


def test_zhang_csv_without_classes_file_uses_registry_names(tmp_path):
    write_zhang(tmp_path / "yelp_review_polarity_csv", ['"2","great food"\n', '"1","meh"\n'])
    data = registry.read_named_dataset("yelp_p", "train", str(tmp_path))
    assert data.label_names == ["negative", "positive"] and data.labels.tolist() == [1, 0]


def test_absent_dataset_names_expected_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dbpedia_csv/test.csv.*classes.txt"):
        registry.read_named_dataset("dbpedia", "test", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"sogou_news/train.jsonl"):
        registry.read_named_dataset("sogou", "train", str(tmp_path))
    with pytest.raises(ValueError, match="Unknown dataset"):
        registry.read_named_dataset("mnist", "train", str(tmp_path))


def test_bad_zhang_rows_are_named(tmp_path):
    write_zhang(tmp_path / "dbpedia_csv", ['"x","title","body"\n'])
    with pytest.raises(ValueError, match=r"train.csv:1: expected 'label,text"):
        registry.read_named_dataset("dbpedia", "train", str(tmp_path))
    write_zhang(tmp_path / "yelp_review_full_csv", ['"7","too many stars"\n'])
    with pytest.raises(ValueError, match="labels run from 7 to 7, but there are 5 classes"):
        registry.read_named_dataset("yelp_f", "train", str(tmp_path))


def test_all_eight_paper_datasets_are_registered():
    assert set(registry.DATASETS) == {
        "imdb", "yelp_p", "yelp_f", "trec", "yahoo", "ag_news", "dbpedia", "sogou"
    }
