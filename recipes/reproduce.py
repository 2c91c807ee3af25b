r"""Re-run one of the paper's fine-tuning tables on a dataset, with a report.

  python recipes/reproduce.py --table=3 --dataset=data/trec --backbone=minilm \
      --epochs=2 --output_dir=runs/table3_trec

--table: 2 (long-text strategies), 3 (layer features), 4 (ξ × learning rate).
--dataset: a registry name of the paper's datasets (imdb, yelp_p, yelp_f,
trec, yahoo, ag_news, dbpedia, sogou) read from --data_dir, or any dataset
spec (file, directory with train/test splits, tfds:NAME). The budget flags
(--train_examples, --epochs, --sequence_length, …) scale a grid down to CPU
minutes or up to the paper's settings. Every cell is a normal fine-tune run
in --output_dir/CELL; started again, the grid skips finished cells. Writes
--output_dir/report.md with PNG charts.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import kerasbert  # noqa: E402
from kerasbert.data import registry  # noqa: E402
from kerasbert.training import grids  # noqa: E402

flags.DEFINE_enum("table", None, ["2", "3", "4"], "The paper's table to reproduce.")
flags.DEFINE_string("dataset", None, "Registry name (with --data_dir) or dataset spec.")
flags.DEFINE_string("data_dir", None, "Directory of the paper's datasets / TFDS data.")
flags.DEFINE_string("backbone", "minilm", "Backbone spec.")
flags.DEFINE_integer("train_examples", None, "Budget: a seeded subset of training examples.")
flags.DEFINE_integer("train_examples_per_class", None, "Budget: few-shot examples per class.")
flags.DEFINE_float("validation_fraction", 0.1, "Fraction of train carved off as validation.")
flags.DEFINE_integer("epochs", 4, "Epochs per cell.")
flags.DEFINE_integer("batch_size", 24, "Batch size.")
flags.DEFINE_integer("sequence_length", 512, "Word pieces per input.")
flags.DEFINE_integer("head_length", 128, "Head pieces of head_tail.")
flags.DEFINE_integer("max_segments", None, "Segment cap (Table 2).")
flags.DEFINE_float("learning_rate", 2e-5, "Learning rate (Tables 2 and 3).")
flags.DEFINE_list("learning_rates", ["2.5e-5", "2e-5"], "Table 4's learning rates.")
flags.DEFINE_integer("seed", 0, "Seed of every cell.")
flags.DEFINE_string("output_dir", None, "Grid directory.")
FLAGS = flags.FLAGS


def read_data():
    if FLAGS.dataset in registry.DATASETS and FLAGS.data_dir:
        train = registry.read_named_dataset(FLAGS.dataset, "train", FLAGS.data_dir)
        test = registry.read_named_dataset(
            FLAGS.dataset, "test", FLAGS.data_dir, label_names=train.label_names)
    else:
        train = kerasbert.read_labeled_texts(FLAGS.dataset, "train", data_dir=FLAGS.data_dir)
        try:
            test = kerasbert.read_labeled_texts(FLAGS.dataset, "test", data_dir=FLAGS.data_dir,
                                                label_names=train.label_names)
        except FileNotFoundError:
            test = None  # a single file: validation only
    if FLAGS.train_examples:
        train = train.sample(FLAGS.train_examples, seed=FLAGS.seed)
    if FLAGS.train_examples_per_class:
        train = train.sample_per_class(FLAGS.train_examples_per_class, seed=FLAGS.seed)
    train, validation = train.split(FLAGS.validation_fraction, seed=FLAGS.seed)
    return train, validation, test


def main(_):
    table = int(FLAGS.table)
    train, validation, test = read_data()
    backbone, _ = kerasbert.load_backbone(FLAGS.backbone)
    results = grids.run_grid(
        table, FLAGS.backbone, train, FLAGS.output_dir, validation=validation, test=test,
        learning_rates=[float(r) for r in FLAGS.learning_rates],
        num_layers=backbone.num_layers, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
        sequence_length=FLAGS.sequence_length, head_length=FLAGS.head_length,
        max_segments=FLAGS.max_segments, seed=FLAGS.seed,
        **({} if table == 4 else {"learning_rate": FLAGS.learning_rate}),
    )
    command = " ".join(["python", "recipes/reproduce.py", *sys.argv[1:]])
    print(f"report: {grids.write_report(table, results, FLAGS.output_dir, command)}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["table", "dataset", "output_dir"])
    app.run(main)
