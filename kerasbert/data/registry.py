"""The paper's eight datasets by name, read from local files.

`read_named_dataset("dbpedia", "train", data_dir)` reads the files a user
downloaded once (no downloads happen here). The Zhang et al. (2015) sets come
as headerless CSVs `label,field,…` with 1-based labels and `classes.txt`;
IMDb and TREC come from TFDS or JSON Lines; Sogou News is the paper's own
Chinese set, read from JSON Lines (it needs a Chinese vocabulary, e.g.
keras-hub's `bert_base_zh` preset layout).
"""

import dataclasses
import os

import numpy as np

from kerasbert.data.datasets import LabeledTexts
from kerasbert.data.datasets import read_labeled_texts
from kerasbert.data.records import decoded_lines
from kerasbert.data.records import delimited_rows


@dataclasses.dataclass(frozen=True)
class NamedDataset:
    """Where a paper dataset lives under `data_dir` and how to read it.

    Attributes:
        directory: str. Sub-directory of `data_dir`.
        layout: str. `"zhang_csv"` (`{split}.csv`, headerless, 1-based
            labels), `"jsonl"` (`{split}.jsonl` with `text`, `label`) or
            `"tfds"` (the TFDS name in `tfds_name`).
        class_names: tuple of str or None. For Zhang CSVs without
            `classes.txt`.
        tfds_name: str or None. TFDS fallback when the directory is absent.
        backbone: str. The backbone the paper fine-tuned: BERT-base uncased
            for English, BERT-base Chinese (keras-hub `bert_base_zh`) for
            Sogou News.
    """

    directory: str
    layout: str
    class_names: tuple = None
    tfds_name: str = None
    backbone: str = "bert_base_en_uncased"


DATASETS = {
    "imdb": NamedDataset("imdb", "jsonl", tfds_name="imdb_reviews"),
    "yelp_p": NamedDataset("yelp_review_polarity_csv", "zhang_csv", ("negative", "positive")),
    "yelp_f": NamedDataset("yelp_review_full_csv", "zhang_csv", ("1", "2", "3", "4", "5")),
    "trec": NamedDataset("trec", "jsonl", tfds_name="trec"),
    "yahoo": NamedDataset("yahoo_answers_csv", "zhang_csv"),
    "ag_news": NamedDataset("ag_news_csv", "zhang_csv"),
    "dbpedia": NamedDataset("dbpedia_csv", "zhang_csv"),
    "sogou": NamedDataset("sogou_news", "jsonl", backbone="bert_base_zh"),
}


def read_zhang_csv(path, class_names=None, label_names=None):
    """Read a Zhang et al. (2015) CSV: `label,field,…`, no header, labels 1…C.

    Text fields are joined with a space; the files' literal `\\n` sequences
    become newlines.

    Args:
        path: str. The CSV file.
        class_names: list of str or None. Names of classes 1…C (e.g. from
            `classes.txt`); `None` names them "1"…"C".
        label_names: list of str or None. A vocabulary the labels must fit
            (pass the training set's when reading test data).

    Returns:
        A `LabeledTexts`.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Zhang et al. CSV {path!r} does not exist.")
    texts, labels = [], []
    with open(path, "rb") as file:
        for number, row in delimited_rows(decoded_lines(file, path), "csv", path):
            if len(row) < 2 or not row[0].strip().isdigit():
                raise ValueError(
                    f"{path}:{number}: expected 'label,text[,text…]' with a 1-based "
                    f"integer label, got {row[:2]!r}."
                )
            labels.append(int(row[0]) - 1)
            texts.append(" ".join(f.replace("\\n", "\n").strip() for f in row[1:]))
    if not texts:
        raise ValueError(f"Zhang et al. CSV {path!r} holds no examples.")
    names = list(class_names) if class_names else [str(i + 1) for i in range(max(labels) + 1)]
    if min(labels) < 0 or max(labels) >= len(names):
        raise ValueError(
            f"{path}: labels run from {min(labels) + 1} to {max(labels) + 1}, but there are "
            f"{len(names)} classes {names}."
        )
    if label_names is not None and list(label_names) != names:
        raise ValueError(f"{path}: classes {names} differ from the expected {list(label_names)}.")
    return LabeledTexts(texts, np.array(labels, np.int32), names, path)


def read_named_dataset(name, split, data_dir, label_names=None):
    """Read split `split` of one of the paper's datasets from `data_dir`.

    Args:
        name: str. One of `DATASETS`: imdb, yelp_p, yelp_f, trec, yahoo,
            ag_news, dbpedia, sogou.
        split: str. `"train"` or `"test"`.
        data_dir: str. The directory holding the datasets' folders.
        label_names: list of str or None. The training vocabulary, for test data.

    Returns:
        A `LabeledTexts`.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; known: {sorted(DATASETS)}.")
    spec = DATASETS[name]
    directory = os.path.join(data_dir, spec.directory)
    if spec.layout == "zhang_csv":
        path = os.path.join(directory, f"{split}.csv")
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"Dataset {name!r} expects {path} (and {os.path.join(directory, 'classes.txt')} "
                "for class names): the Zhang et al. (2015) CSV release, unpacked under "
                f"data_dir={data_dir!r}."
            )
        classes_path = os.path.join(directory, "classes.txt")
        class_names = spec.class_names
        if os.path.isfile(classes_path):
            with open(classes_path, encoding="utf-8") as file:
                class_names = [line.strip() for line in file if line.strip()]
        return read_zhang_csv(path, class_names, label_names)
    path = os.path.join(directory, f"{split}.jsonl")
    if os.path.isfile(path):
        return read_labeled_texts(path, label_names=label_names)
    if spec.tfds_name is not None:
        try:
            return read_labeled_texts(
                f"tfds:{spec.tfds_name}", split, data_dir=data_dir, label_names=label_names
            )
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"Dataset {name!r} expects {path} (JSON Lines with 'text' and 'label') or "
                f"the TFDS dataset {spec.tfds_name!r} prepared under data_dir={data_dir!r}."
            ) from error
    raise FileNotFoundError(
        f"Dataset {name!r} expects {path}: JSON Lines with 'text' and 'label'."
    )
