r"""Re-run one of the paper's tables or figures on a dataset, over seeds, with a report.

  .venv/bin/python recipes/reproduce.py --table=4 --dataset=data/trec --budget=cpu \
      --seeds=3 --output_dir=runs/table4_trec
  .venv/bin/python recipes/reproduce.py --figure=2 --dataset=data/trec --budget=cpu \
      --output_dir=runs/figure2_trec

--table: 2 (long-text strategies), 3 (features of each layer), 4 (ξ ×
learning rate), 5 (fine-tuning from no / in-task / in-domain / cross-domain
further pre-training), 6 (the same with the BERT-Feat baseline and the
relative error reduction), 7 (single-task vs multi-task fine-tuning; the
other tasks come from --multitask_datasets).
--figure: 2 (learning rates 2e-5 … 4e-4: training loss and validation error
per epoch per rate), 3 (error against further pre-training steps: one
in-task pre-training keeps its encoder every --checkpoint_every steps, each
is fine-tuned), 4 (few-shot: BERT-FiT against BERT-ITPT-FiT over training
sizes --fractions of the whole training set and/or --examples_per_class, on
a log axis; a few-shot cell has no validation set and keeps its last epoch).
--dataset: a registry name of the paper's datasets (imdb, yelp_p, yelp_f,
trec, yahoo, ag_news, dbpedia, sogou) read from --data_dir, or any dataset
spec (file, directory with train/test splits, tfds:NAME).
--budget: `paper` (the default: every flag at the paper's setting) or `cpu`
(a scaled-down grid that finishes on two CPU cores in under an hour with
MiniLM on TREC-6: see BUDGETS); a flag given on the command line always
wins over the budget.
--seeds=N runs every cell with seeds 0 … N−1 (or --seed=0,3,7 for a list):
the seed picks the training subset, the validation carve, the new weights
and the batch order, so every row of one seed sees the same data. The report
shows mean ± standard deviation, the per-seed values, and each row against
its baseline row: the mean paired difference with a 95 % t interval over
the seeds and a paired bootstrap over the test answers (every seed's
pooled), and a verdict: better or worse when both intervals agree, else not
distinguishable at this budget. Seeds can be added to a grid later; a list
that leaves out seeds the directory holds is refused.

In-task further pre-training reads the dataset's whole training text; in-domain
and cross-domain pre-training read the corpora of --in_domain_corpus and
--cross_domain_corpus (their rows are left out when these are unset).
Further pre-training runs once (seeded by --pretrain_seed) and every seed
fine-tunes from it. Every cell is a normal recipe run in
--output_dir/seed_<S>/CELL; started again, the grid returns finished cells
and resumes an interrupted one. Writes --output_dir/report.md with PNG charts.
"""

import os
import re
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
flags.DEFINE_enum("figure", None, [str(f) for f in grids.FIGURES], "The paper's figure to reproduce.")
flags.DEFINE_string("dataset", None, "Registry name (with --data_dir) or dataset spec.")
flags.DEFINE_list("multitask_datasets", [], "Table 7: the other tasks (names or specs).")
flags.DEFINE_string("data_dir", None, "Directory of the paper's datasets / TFDS data.")
flags.DEFINE_string("backbone", None, "Backbone spec; unset: minilm, or for Chinese Sogou News keras-hub's bert_base_zh (a preset name, or a local directory in its layout).")
flags.DEFINE_enum("budget", "paper", ["paper", "cpu"], "Preset budget; explicit flags override it.")
flags.DEFINE_integer("train_examples", None, "Budget: a seeded subset of training examples per task; 0 or unset: all (0 overrides --budget=cpu).")
flags.DEFINE_integer("train_examples_per_class", None, "Budget: few-shot examples per class.")
flags.DEFINE_float("validation_fraction", 0.1, "Fraction of train carved off as validation (best-epoch selection; not in Figure 4).")
flags.DEFINE_integer("epochs", 4, "Epochs per cell (Table 7: of the joint phase).")
flags.DEFINE_integer("finetune_epochs", 1, "Table 7: per-task epochs after the joint phase.")
flags.DEFINE_integer("batch_size", 24, "Batch size.")
flags.DEFINE_integer("sequence_length", 512, "Word pieces per input.")
flags.DEFINE_enum("truncation", "head", ["head", "tail", "head_tail"], "Long-text handling outside Table 2.")
flags.DEFINE_integer("head_length", 128, "Head pieces of head_tail.")
flags.DEFINE_integer("max_segments", None, "Segment cap (Table 2).")
flags.DEFINE_float("learning_rate", 2e-5, "Learning rate (all grids but Table 4 and Figure 2).")
flags.DEFINE_list("learning_rates", None, "Table 4's learning rates (default 2.5e-5,2e-5) or Figure 2's (default 2e-5,5e-5,1e-4,4e-4).")
flags.DEFINE_float("feature_learning_rate", 1e-3, "Table 6: BERT-Feat's learning rate.")
flags.DEFINE_list("fractions", None, "Figure 4: fractions in (0, 1] of the whole training set (paper budget: 0.004,0.01,0.05,0.1,0.2,0.5,1; unset when --examples_per_class is given).")
flags.DEFINE_list("examples_per_class", [], "Figure 4: training sizes as examples per class.")
flags.DEFINE_integer("min_train_steps", 0, "Figure 4: train a small subset for more epochs, so that it takes at least this many steps.")
flags.DEFINE_multi_string("in_domain_corpus", [], "Tables 5–6: in-domain corpus sources, SPEC[@WEIGHT], repeatable.")
flags.DEFINE_multi_string("cross_domain_corpus", [], "Tables 5–7: cross-domain corpus sources, SPEC[@WEIGHT], repeatable.")
flags.DEFINE_integer("pretrain_steps", 100_000, "Further pre-training steps.")
flags.DEFINE_integer("pretrain_warmup_steps", 10_000, "Further pre-training warmup steps.")
flags.DEFINE_integer("pretrain_batch_size", 32, "Further pre-training batch size.")
flags.DEFINE_integer("pretrain_sequence_length", 128, "Further pre-training sequence length.")
flags.DEFINE_float("pretrain_learning_rate", 5e-5, "Further pre-training learning rate.")
flags.DEFINE_bool("pretrain_nsp", True, "Add next-sentence prediction to masked LM.")
flags.DEFINE_integer("checkpoint_every", 1000, "Further pre-training checkpoint interval (Figure 3: an encoder is kept at each, a whole encoder on disk: 10 BERT-base encoders are about 4 GB).")
flags.DEFINE_integer("pretrain_seed", 0, "Seed of further pre-training, which runs once for all seeds.")
flags.DEFINE_list("seed", ["0"], "Seeds: every cell runs once per seed.")
flags.DEFINE_integer("seeds", None, "Run seeds 0 … N−1 (instead of --seed).")
flags.DEFINE_string("output_dir", None, "Grid directory.")
flags.DEFINE_bool("overwrite", False, "Clear a cell or pre-training directory that holds a run with other settings, and run it again.")
flags.DEFINE_bool("traceback", False, "Show the Python traceback of a failure.")
FLAGS = flags.FLAGS

# Budgets: flag values per grid ("tables" for every table); a flag given on
# the command line wins. `cpu`: MiniLM on TREC-6 in under an hour on two
# CPU cores per grid (measured: Table 4, 8 cells of about 2.3 minutes per seed,
# 3 seeds in 55 minutes; MiniLM pre-training at batch 32 × 128 took about 10 s
# a step, hence the short pre-training of Figures 3 and 4).
CPU_TABLES = {"train_examples": 2000, "epochs": 2, "sequence_length": 128, "head_length": 32,
              "max_segments": 4, "learning_rate": 1e-4, "learning_rates": ["1e-4", "5e-5"],
              "pretrain_steps": 200, "pretrain_warmup_steps": 20, "checkpoint_every": 100}
BUDGETS = {
    "paper": {
        "figure3": {"checkpoint_every": 10_000},
        "figure4": {"fractions": ["0.004", "0.01", "0.05", "0.1", "0.2", "0.5", "1"]},
    },
    "cpu": {
        "tables": CPU_TABLES,
        "figure2": {**CPU_TABLES, "train_examples": 1000, "epochs": 4,
                    "learning_rates": ["2e-5", "5e-5", "1e-4", "4e-4"]},
        "figure3": {**CPU_TABLES, "checkpoint_every": 50},
        "figure4": {**CPU_TABLES, "train_examples": 0, "min_train_steps": 50,
                    "pretrain_steps": 100, "pretrain_warmup_steps": 10,
                    "fractions": ["0.01", "0.03", "0.1", "0.3", "1"]},
    },
}


def grid_name():
    if (FLAGS.table is None) == (FLAGS.figure is None):
        raise app.UsageError("Give exactly one of --table and --figure.")
    return f"table{FLAGS.table}" if FLAGS.table else f"figure{FLAGS.figure}"


def apply_budget(grid):
    budgets = BUDGETS[FLAGS.budget]
    preset = budgets.get(grid, budgets.get("tables", {}) if grid.startswith("table") else {})
    for name, value in preset.items():
        if name == "fractions" and FLAGS["examples_per_class"].present:
            continue  # the sizes given replace the budget's
        if not FLAGS[name].present:
            FLAGS[name].value = value


def _numbers(name, values, kind):
    try:
        return [kind(v) for v in values]
    except ValueError:
        raise app.UsageError(f"--{name} must be a list of {kind.__name__}s. Received: "
                             f"{','.join(values)}") from None


def seeds():
    if FLAGS.seeds is not None:
        if FLAGS["seed"].present:
            raise app.UsageError("Give --seeds=N or --seed=LIST, not both.")
        if FLAGS.seeds < 1:
            raise app.UsageError(f"--seeds must be at least 1. Received: {FLAGS.seeds}")
        return list(range(FLAGS.seeds))
    chosen = _numbers("seed", FLAGS.seed, int)
    if not chosen or len(set(chosen)) != len(chosen) or min(chosen) < 0:
        raise app.UsageError(f"--seed must list distinct non-negative seeds. Received: "
                             f"{','.join(FLAGS.seed)}")
    return chosen


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


def read_splits(dataset):
    """`(train, test or None)` of a dataset, whole."""
    if dataset in registry.DATASETS and FLAGS.data_dir:
        train = registry.read_named_dataset(dataset, "train", FLAGS.data_dir)
        test = registry.read_named_dataset(
            dataset, "test", FLAGS.data_dir, label_names=train.label_names)
        return train, test
    train = kerasbert.read_labeled_texts(dataset, "train", data_dir=FLAGS.data_dir)
    test = None  # without a test split, cells report their validation error
    if not os.path.isfile(dataset):  # a file is one split: never read it again as test
        try:
            test = kerasbert.read_labeled_texts(dataset, "test", data_dir=FLAGS.data_dir,
                                                label_names=train.label_names)
        except FileNotFoundError:
            pass
    return train, test


def task_for_seed(train, test, seed, carve=True):
    """The task one seed runs: its training subset (budget) and validation
    carve (none for Figure 4, whose few-shot cells train without one)."""
    if FLAGS.train_examples and FLAGS.train_examples < len(train):
        train = train.sample(FLAGS.train_examples, seed=seed)
    if FLAGS.train_examples_per_class:
        train = train.sample_per_class(FLAGS.train_examples_per_class, seed=seed)
    validation = None
    if carve:
        train, validation = train.split(FLAGS.validation_fraction, seed=seed)
    return TaskData(train, validation, test, sequence_length=FLAGS.sequence_length,
                    truncation=FLAGS.truncation, head_length=FLAGS.head_length)


def check_output_dir(seed_list, cells):
    """Refuse what would mix results or drop them from the report: cells of
    the one-seed layout of earlier versions (DIR/CELL), a seed list that
    leaves out seeds DIR holds, and cells of another grid or of sizes or
    rates this command leaves out."""
    if not os.path.isdir(FLAGS.output_dir):
        return
    held, old, stale = [], [], set()
    names = {cell.name for cell in cells}
    for name in sorted(os.listdir(FLAGS.output_dir)):
        path = os.path.join(FLAGS.output_dir, name)
        if re.fullmatch(r"seed_\d+", name) and os.path.isdir(path):
            held.append(int(name[len("seed_"):]))
            stale |= {cell for cell in os.listdir(path) if not cell.startswith(".")
                      and os.path.isdir(os.path.join(path, cell)) and cell not in names}
        elif os.path.isfile(os.path.join(path, "run.json")) and name != "pretraining":
            old.append(name)
    if old:
        raise app.UsageError(
            f"{FLAGS.output_dir} holds cells of the earlier one-seed layout ({', '.join(old)}); "
            f"move them into {os.path.join(FLAGS.output_dir, 'seed_0')} to keep them as seed 0, "
            "or give another --output_dir.")
    left_out = sorted(set(held) - set(seed_list))
    if left_out:
        raise app.UsageError(
            f"{FLAGS.output_dir} holds seeds {sorted(held)}; --seed/--seeds leaves out "
            f"{left_out}, and the report would leave their runs out. Give every seed "
            f"(e.g. --seed={','.join(map(str, sorted(set(held) | set(seed_list))))}), or "
            "another --output_dir.")
    if stale:
        raise app.UsageError(
            f"{FLAGS.output_dir} holds cells that this {grid_name()} command does not run "
            f"({', '.join(sorted(stale))}): another grid, or sizes, rates or corpora left out. "
            "The report would leave them out; give the same grid and lists, or another "
            "--output_dir.")


def backbone_spec():
    if FLAGS.backbone:
        return FLAGS.backbone
    named = registry.DATASETS.get(FLAGS.dataset)
    if named is not None and named.backbone.endswith("_zh"):
        return named.backbone  # MiniLM's English vocabulary would read [UNK] and little else
    return "minilm"


def main(_):
    grid = grid_name()
    apply_budget(grid)
    seed_list = seeds()
    learning_rates = (None if FLAGS.learning_rates is None
                      else _numbers("learning_rates", FLAGS.learning_rates, float))
    fractions = _numbers("fractions", FLAGS.fractions or [], float)
    examples_per_class = _numbers("examples_per_class", FLAGS.examples_per_class, int)
    if FLAGS.min_train_steps < 0:
        raise app.UsageError(f"--min_train_steps must be 0 or more. Received: "
                             f"{FLAGS.min_train_steps}")
    # Checked before anything is read or written: a bad size list fails
    # now, not after an hour of other cells.
    grids.grid_cells(grid, 12, **({"learning_rates": learning_rates} if learning_rates else {}),
                     fractions=tuple(fractions), examples_per_class=tuple(examples_per_class),
                     pretraining_steps=FLAGS.pretrain_steps,
                     checkpoint_every=FLAGS.checkpoint_every)
    if grid == "table7" and not FLAGS.multitask_datasets:
        raise app.UsageError(
            "--table=7 trains several tasks together: name the other tasks with "
            "--multitask_datasets=NAME_OR_SPEC[,...].")
    datasets = [FLAGS.dataset] + (FLAGS.multitask_datasets if grid == "table7" else [])
    splits, corpora = {}, {}
    for dataset in datasets:
        splits[task_name(dataset)] = read_splits(dataset)
    if len(splits) != len(datasets):
        raise app.UsageError(f"Two datasets have the same task name: {datasets}")
    if grid == "figure4" and splits[task_name(FLAGS.dataset)][1] is None:
        raise app.UsageError(f"Figure 4 needs a test split of {FLAGS.dataset}: its few-shot "
                             "cells train without a validation set.")
    if FLAGS.in_domain_corpus and grid in ("table5", "table6"):
        corpora["idpt"] = [parse_source(s) for s in FLAGS.in_domain_corpus]
    if FLAGS.cross_domain_corpus and grid in ("table5", "table6", "table7"):
        corpora["cdpt"] = [parse_source(s) for s in FLAGS.cross_domain_corpus]
    in_task = grid in ("table5", "table6", "figure3", "figure4")
    spec = backbone_spec()
    backbone, _ = kerasbert.load_backbone(spec)
    cells = grids.grid_cells(
        grid, backbone.num_layers, corpora=tuple(corpora) + (("itpt",) if in_task else ()),
        **({"learning_rates": learning_rates} if learning_rates else {}),
        fractions=tuple(fractions), examples_per_class=tuple(examples_per_class),
        pretraining_steps=FLAGS.pretrain_steps, checkpoint_every=FLAGS.checkpoint_every)
    check_output_dir(seed_list, cells)
    tasks_by_seed = {
        seed: {name: task_for_seed(train, test, seed, carve=grid != "figure4")
               for name, (train, test) in splits.items()}
        for seed in seed_list
    }
    for seed, tasks in tasks_by_seed.items():
        grids.check_training_subsets(cells, tasks[task_name(FLAGS.dataset)].train, seed)
    # Written only once every check passed: a refused command leaves nothing.
    if in_task:
        path = os.path.join(FLAGS.output_dir, "corpora", "in_task.jsonl")
        grids.write_corpus(splits[task_name(FLAGS.dataset)][0].texts, path)
        corpora["itpt"] = [(path, 1.0)]
    pretraining = dict(
        steps=FLAGS.pretrain_steps, warmup_steps=FLAGS.pretrain_warmup_steps,
        batch_size=FLAGS.pretrain_batch_size, sequence_length=FLAGS.pretrain_sequence_length,
        learning_rate=FLAGS.pretrain_learning_rate, nsp=FLAGS.pretrain_nsp,
        checkpoint_every=FLAGS.checkpoint_every, seed=FLAGS.pretrain_seed,
        overwrite=FLAGS.overwrite,
    )
    results = {}
    for seed, tasks in tasks_by_seed.items():
        results[seed] = grids.run_grid(
            grid, spec, tasks, os.path.join(FLAGS.output_dir, f"seed_{seed}"), corpora=corpora,
            pretraining=pretraining,
            pretraining_dir=os.path.join(FLAGS.output_dir, "pretraining"),
            learning_rates=learning_rates, feature_learning_rate=FLAGS.feature_learning_rate,
            num_layers=backbone.num_layers, fractions=fractions,
            examples_per_class=examples_per_class, min_train_steps=FLAGS.min_train_steps,
            finetune_epochs=FLAGS.finetune_epochs, epochs=FLAGS.epochs,
            batch_size=FLAGS.batch_size, max_segments=FLAGS.max_segments, seed=seed,
            overwrite=FLAGS.overwrite,
            **({} if grid in ("table4", "figure2") else {"learning_rate": FLAGS.learning_rate}),
        )
        print(f"seed {seed}: {len(results[seed])} cells done", flush=True)
    command = " ".join(["python", "recipes/reproduce.py", *sys.argv[1:]])
    report = grid_reports.write_report(
        grid, results, FLAGS.output_dir, command, dataset=task_name(FLAGS.dataset))
    print(f"report: {report}")


if __name__ == "__main__":
    recipe_main.run(main, required=["dataset", "output_dir"])
