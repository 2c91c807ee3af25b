r"""Re-run one of the paper's tables on a dataset, with a report.

  python recipes/reproduce.py --table=3 --dataset=data/trec --backbone=minilm \
      --budget=cpu --output_dir=runs/table3_trec

--table: 2 (long-text strategies), 3 (features of each layer), 4 (ξ ×
learning rate), 5 (fine-tuning from no / in-task / in-domain / cross-domain
further pre-training), 6 (the same with the BERT-Feat baseline and the
relative error reduction), 7 (single-task vs multi-task fine-tuning; the
other tasks come from --multitask_datasets).
--dataset: a registry name of the paper's datasets (imdb, yelp_p, yelp_f,
trec, yahoo, ag_news, dbpedia, sogou) read from --data_dir, or any dataset
spec (file, directory with train/test splits, tfds:NAME).
--budget: `paper` (the default: every flag at the paper's setting) or `cpu`
(a scaled-down grid that finishes in CPU minutes: see BUDGETS); a flag given
on the command line always wins over the budget.

In-task further pre-training reads the dataset's training text; in-domain
and cross-domain pre-training read the corpora of --in_domain_corpus and
--cross_domain_corpus (their rows are left out when these are unset). Every
cell is a normal recipe run in --output_dir/CELL; started again, the grid
returns finished cells and resumes an interrupted pre-training. Writes
--output_dir/report.md with PNG charts.
"""

import os
import sys

import recipe_main  # noqa: E402  (first: starts TensorFlow quietly)

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import kerasbert  # noqa: E402
from kerasbert.data import registry  # noqa: E402
from kerasbert.data.corpus import parse_source  # noqa: E402
from kerasbert.reproduction import reports as grid_reports  # noqa: E402
from kerasbert.reproduction import grids  # noqa: E402
from kerasbert.training.multitask import TaskData  # noqa: E402

flags.DEFINE_enum("table", None, [str(t) for t in grids.TABLES], "The paper's table to reproduce.")
flags.DEFINE_string("dataset", None, "Registry name (with --data_dir) or dataset spec.")
flags.DEFINE_list("multitask_datasets", [], "Table 7: the other tasks (names or specs).")
flags.DEFINE_string("data_dir", None, "Directory of the paper's datasets / TFDS data.")
flags.DEFINE_string("backbone", None, "Backbone spec; unset: minilm, or for Chinese Sogou News keras-hub's bert_base_zh (a preset name, or a local directory in its layout).")
flags.DEFINE_enum("budget", "paper", ["paper", "cpu"], "Preset budget; explicit flags override it.")
flags.DEFINE_integer("train_examples", None, "Budget: a seeded subset of training examples per task; 0 or unset: all (0 overrides --budget=cpu).")
flags.DEFINE_integer("train_examples_per_class", None, "Budget: few-shot examples per class.")
flags.DEFINE_float("validation_fraction", 0.1, "Fraction of train carved off as validation.")
flags.DEFINE_integer("epochs", 4, "Epochs per cell (Table 7: of the joint phase).")
flags.DEFINE_integer("finetune_epochs", 1, "Table 7: per-task epochs after the joint phase.")
flags.DEFINE_integer("batch_size", 24, "Batch size.")
flags.DEFINE_integer("sequence_length", 512, "Word pieces per input.")
flags.DEFINE_enum("truncation", "head", ["head", "tail", "head_tail"], "Long-text handling outside Table 2.")
flags.DEFINE_integer("head_length", 128, "Head pieces of head_tail.")
flags.DEFINE_integer("max_segments", None, "Segment cap (Table 2).")
flags.DEFINE_float("learning_rate", 2e-5, "Learning rate (all tables but 4).")
flags.DEFINE_list("learning_rates", ["2.5e-5", "2e-5"], "Table 4's learning rates.")
flags.DEFINE_float("feature_learning_rate", 1e-3, "Table 6: BERT-Feat's learning rate.")
flags.DEFINE_multi_string("in_domain_corpus", [], "Tables 5–6: in-domain corpus sources, SPEC[@WEIGHT], repeatable.")
flags.DEFINE_multi_string("cross_domain_corpus", [], "Tables 5–7: cross-domain corpus sources, SPEC[@WEIGHT], repeatable.")
flags.DEFINE_integer("pretrain_steps", 100_000, "Further pre-training steps.")
flags.DEFINE_integer("pretrain_warmup_steps", 10_000, "Further pre-training warmup steps.")
flags.DEFINE_integer("pretrain_batch_size", 32, "Further pre-training batch size.")
flags.DEFINE_integer("pretrain_sequence_length", 128, "Further pre-training sequence length.")
flags.DEFINE_float("pretrain_learning_rate", 5e-5, "Further pre-training learning rate.")
flags.DEFINE_bool("pretrain_nsp", True, "Add next-sentence prediction to masked LM.")
flags.DEFINE_integer("checkpoint_every", 1000, "Further pre-training checkpoint interval.")
flags.DEFINE_integer("seed", 0, "Seed of every cell.")
flags.DEFINE_string("output_dir", None, "Grid directory.")
flags.DEFINE_bool("traceback", False, "Show the Python traceback of a failure.")
FLAGS = flags.FLAGS

# `--budget=cpu`: MiniLM-sized grids in CPU minutes (a few minutes per cell).
BUDGETS = {
    "paper": {},
    "cpu": {"train_examples": 2000, "epochs": 2, "sequence_length": 128, "head_length": 32,
            "max_segments": 4, "learning_rate": 1e-4, "learning_rates": ["1e-4", "5e-5"],
            "pretrain_steps": 200, "pretrain_warmup_steps": 20, "checkpoint_every": 100},
}


def apply_budget():
    for name, value in BUDGETS[FLAGS.budget].items():
        if not FLAGS[name].present:
            FLAGS[name].value = value


def task_name(dataset):
    """A registry name as is; else a path's last component without extension
    (or its directory's name for a `train.*` file)."""
    if dataset in registry.DATASETS:
        return dataset
    path = os.path.normpath(dataset.removeprefix("tfds:"))
    name = os.path.splitext(os.path.basename(path))[0]
    if name in ("train", "training") and os.path.dirname(path):
        return os.path.basename(os.path.dirname(path))  # .../imdb/train.jsonl → imdb
    return name


def read_task(dataset):
    """`(task, full training texts)` of a dataset, with the budget applied."""
    if dataset in registry.DATASETS and FLAGS.data_dir:
        train = registry.read_named_dataset(dataset, "train", FLAGS.data_dir)
        test = registry.read_named_dataset(
            dataset, "test", FLAGS.data_dir, label_names=train.label_names)
    else:
        train = kerasbert.read_labeled_texts(dataset, "train", data_dir=FLAGS.data_dir)
        test = None  # without a test split, cells report their validation error
        if not os.path.isfile(dataset):  # a file is one split: never read it again as test
            try:
                test = kerasbert.read_labeled_texts(dataset, "test", data_dir=FLAGS.data_dir,
                                                    label_names=train.label_names)
            except FileNotFoundError:
                pass
    all_texts = train.texts
    if FLAGS.train_examples and FLAGS.train_examples < len(train):
        train = train.sample(FLAGS.train_examples, seed=FLAGS.seed)
    if FLAGS.train_examples_per_class:
        train = train.sample_per_class(FLAGS.train_examples_per_class, seed=FLAGS.seed)
    train, validation = train.split(FLAGS.validation_fraction, seed=FLAGS.seed)
    task = TaskData(train, validation, test, sequence_length=FLAGS.sequence_length,
                truncation=FLAGS.truncation, head_length=FLAGS.head_length)
    return task, all_texts


def backbone_spec():
    if FLAGS.backbone:
        return FLAGS.backbone
    named = registry.DATASETS.get(FLAGS.dataset)
    if named is not None and named.backbone.endswith("_zh"):
        return named.backbone  # MiniLM's English vocabulary would read [UNK] and little else
    return "minilm"


def main(_):
    apply_budget()
    table = int(FLAGS.table)
    datasets = [FLAGS.dataset] + (FLAGS.multitask_datasets if table == 7 else [])
    tasks, corpora = {}, {}
    for dataset in datasets:
        tasks[task_name(dataset)], texts = read_task(dataset)
        if dataset == FLAGS.dataset and table in (5, 6):
            in_task = os.path.join(FLAGS.output_dir, "corpora", "in_task.jsonl")
            grids.write_corpus(texts, in_task)
            corpora["itpt"] = [(in_task, 1.0)]
    if len(tasks) != len(datasets):
        raise app.UsageError(f"Two datasets have the same task name: {datasets}")
    if FLAGS.in_domain_corpus and table in (5, 6):
        corpora["idpt"] = [parse_source(s) for s in FLAGS.in_domain_corpus]
    if FLAGS.cross_domain_corpus and table in (5, 6, 7):
        corpora["cdpt"] = [parse_source(s) for s in FLAGS.cross_domain_corpus]
    spec = backbone_spec()
    backbone, _ = kerasbert.load_backbone(spec)
    results = grids.run_grid(
        table, spec, tasks, FLAGS.output_dir, corpora=corpora,
        pretraining=dict(
            steps=FLAGS.pretrain_steps, warmup_steps=FLAGS.pretrain_warmup_steps,
            batch_size=FLAGS.pretrain_batch_size, sequence_length=FLAGS.pretrain_sequence_length,
            learning_rate=FLAGS.pretrain_learning_rate, nsp=FLAGS.pretrain_nsp,
            checkpoint_every=FLAGS.checkpoint_every, seed=FLAGS.seed,
        ),
        learning_rates=[float(r) for r in FLAGS.learning_rates],
        feature_learning_rate=FLAGS.feature_learning_rate, num_layers=backbone.num_layers,
        finetune_epochs=FLAGS.finetune_epochs, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
        max_segments=FLAGS.max_segments, seed=FLAGS.seed,
        **({} if table == 4 else {"learning_rate": FLAGS.learning_rate}),
    )
    command = " ".join(["python", "recipes/reproduce.py", *sys.argv[1:]])
    report = grid_reports.write_report(
        table, results, FLAGS.output_dir, command, dataset=task_name(FLAGS.dataset))
    print(f"report: {report}")


if __name__ == "__main__":
    recipe_main.run(main, required=["table", "dataset", "output_dir"])
