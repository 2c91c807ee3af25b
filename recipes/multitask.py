r"""Multi-task fine-tuning, then per-task fine-tuning (Sun et al. 2019, §4.4).

One shared encoder, one softmax head per task; each step trains on a batch
of one task, drawn proportionally to the tasks' sizes (or uniformly, or by
size^alpha). With --then_finetune every task is then fine-tuned alone from
the shared encoder and its head at a lower rate.

  python recipes/multitask.py --backbone=minilm \
      --task=trec:data/trec:data/trec --task=imdb:imdb.jsonl \
      --task_sequence_length=imdb=256 --task_truncation=imdb=head_tail \
      --then_finetune --output_dir=runs/mfit

--task=NAME:TRAIN_SPEC[:TEST_SPEC]; specs as in recipes/finetune.py
(`tfds:NAME` allowed). Validation is carved from each task's training data.
"""

import json
import os

import recipe_main  # noqa: E402  (first: starts TensorFlow quietly)

from absl import flags  # noqa: E402

import kerasbert  # noqa: E402
from kerasbert.training import arguments  # noqa: E402
from scale_flags import define_scale_flags  # noqa: E402
from scale_flags import scale_settings  # noqa: E402

flags.DEFINE_string("backbone", "minilm", "Backbone spec (e.g. a further-pretrained backbone/ dir).")
flags.DEFINE_multi_string("task", None, "NAME:TRAIN_SPEC[:TEST_SPEC], repeatable.")
flags.DEFINE_multi_string("task_sequence_length", [], "NAME=LENGTH, overriding --sequence_length.")
flags.DEFINE_multi_string("task_truncation", [], "NAME=head|tail|head_tail, overriding --truncation.")
flags.DEFINE_multi_string("task_train_examples", [], "NAME=N: a seeded subset of N training examples.")
flags.DEFINE_integer("sequence_length", 512, "Default input length.")
flags.DEFINE_enum("truncation", "head", ["head", "tail", "head_tail"], "Default truncation.")
flags.DEFINE_integer("head_length", 128, "Head pieces under head_tail.")
flags.DEFINE_list("text_fields", ["text"], "Text fields.")
flags.DEFINE_string("label_field", "label", "Label field.")
flags.DEFINE_string("data_dir", None, "TFDS data directory.")
flags.DEFINE_float("validation_fraction", 0.1, "Fraction of each task's train carved off as validation (0: none).")
flags.DEFINE_enum("sampling", "proportional", ["proportional", "uniform", "temperature"], "Task sampling.")
flags.DEFINE_float("alpha", 0.5, "Exponent of --sampling=temperature.")
flags.DEFINE_string("layers", "-1", "Layer(s) read, as in finetune.py.")
flags.DEFINE_enum("combine", "concat", ["concat", "mean", "max"], "Layer combination.")
flags.DEFINE_float("dropout", 0.1, "Dropout before each head.")
flags.DEFINE_float("learning_rate", 2e-5, "Peak learning rate of the joint phase.")
flags.DEFINE_integer("batch_size", 24, "Batch size.")
flags.DEFINE_integer("epochs", 4, "Joint epochs (an epoch = sum over tasks of ceil(n/batch) steps).")
flags.DEFINE_float("warmup_proportion", 0.1, "Warmup proportion.")
flags.DEFINE_float("layer_decay", 1.0, "Layer-wise rate decay ξ.")
flags.DEFINE_enum("layer_decay_convention", "paper", ["paper", "official_code"], "Embedding convention.")
flags.DEFINE_bool("then_finetune", False, "Fine-tune each task alone afterwards.")
flags.DEFINE_integer("finetune_epochs", 1, "Epochs of per-task fine-tuning.")
flags.DEFINE_float("finetune_learning_rate", None, "Per-task rate (default: half of --learning_rate).")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_string("output_dir", None, "Output directory.")
define_scale_flags()
recipe_main.define_run_flags()
FLAGS = flags.FLAGS


def parse_task(value):
    """NAME:TRAIN[:TEST] → (name, train, test); a `tfds:` prefix stays whole."""
    name, _, rest = value.partition(":")
    parts, specs = rest.split(":"), []
    while parts:
        part = parts.pop(0)
        specs.append(f"tfds:{parts.pop(0)}" if part == "tfds" and parts else part)
    if not name or not 1 <= len(specs) <= 2 or not all(specs):
        raise ValueError(f"--task must be NAME:TRAIN_SPEC[:TEST_SPEC]. Received: {value!r}")
    return name, specs[0], specs[1] if len(specs) == 2 else None


def per_task(flag, values, cast=str):
    """`--flag=NAME=VALUE` values as `{NAME: cast(VALUE)}`; one line per error."""
    parsed = {}
    for value in values:
        name, separator, setting = value.partition("=")
        if not separator or not name or not setting:
            raise ValueError(f"--{flag} must be NAME=VALUE. Received: {value!r}")
        if name in parsed:
            raise ValueError(f"--{flag} names task {name!r} twice.")
        try:
            parsed[name] = cast(setting)
        except ValueError:
            raise ValueError(
                f"--{flag}={value}: {setting!r} is not a valid {cast.__name__}."
            ) from None
    return parsed


def main(_):
    read = dict(text_fields=FLAGS.text_fields, label_field=FLAGS.label_field, data_dir=FLAGS.data_dir)
    lengths = per_task("task_sequence_length", FLAGS.task_sequence_length, int)
    truncations = per_task("task_truncation", FLAGS.task_truncation)
    subsets = per_task("task_train_examples", FLAGS.task_train_examples, int)
    layers = recipe_main.parse_layers(FLAGS.layers)
    arguments.in_range("validation_fraction", FLAGS.validation_fraction, 0, 1, high_open=True)
    tasks = {}
    for value in FLAGS.task:
        name, train_spec, test_spec = parse_task(value)
        if name in tasks:
            raise ValueError(f"--task names {name!r} twice; task names must be unique.")
        train = kerasbert.read_labeled_texts(train_spec, "train", **read)
        if name in subsets:
            train = train.sample(subsets[name], seed=FLAGS.seed)
        validation = None
        if FLAGS.validation_fraction > 0:
            train, validation = train.split(FLAGS.validation_fraction, seed=FLAGS.seed)
        test = None
        if test_spec:
            test = kerasbert.read_labeled_texts(
                test_spec, "test", label_names=train.label_names, **read
            )
        tasks[name] = kerasbert.TaskData(
            train, validation, test, sequence_length=lengths.get(name, FLAGS.sequence_length),
            truncation=truncations.get(name, FLAGS.truncation), head_length=FLAGS.head_length,
        )
    unknown = (set(lengths) | set(truncations) | set(subsets)) - set(tasks)
    if unknown:
        raise ValueError(f"Per-task flags name unknown tasks {sorted(unknown)}; tasks: {sorted(tasks)}.")
    metrics = kerasbert.multitask_fine_tune(
        FLAGS.backbone, tasks, FLAGS.output_dir, sampling=FLAGS.sampling, alpha=FLAGS.alpha,
        layers=layers,
        combine=FLAGS.combine, dropout=FLAGS.dropout, learning_rate=FLAGS.learning_rate,
        batch_size=FLAGS.batch_size, epochs=FLAGS.epochs,
        warmup_proportion=FLAGS.warmup_proportion, layer_decay=FLAGS.layer_decay,
        layer_decay_convention=FLAGS.layer_decay_convention,
        then_finetune=FLAGS.then_finetune, finetune_epochs=FLAGS.finetune_epochs,
        finetune_learning_rate=FLAGS.finetune_learning_rate, seed=FLAGS.seed,
        checkpoint_every_steps=FLAGS.checkpoint_every_steps, overwrite=FLAGS.overwrite,
        **scale_settings(),
    )
    print(json.dumps({"joint": metrics["joint"], "finetuned": metrics["finetuned"]}, indent=2))


if __name__ == "__main__":
    recipe_main.run(main, required=["task", "output_dir"])
