r"""Multi-task fine-tuning, then per-task fine-tuning (Sun et al. 2019, §4.4).

One shared encoder, one softmax head per task; each step trains on a batch
of one task, drawn proportionally to the tasks' sizes (or uniformly, or by
size^alpha). With --then_finetune every task is then fine-tuned alone from
the shared encoder and its head at a lower rate.

  .venv/bin/python recipes/multitask.py --backbone=minilm \
      --task=trec:data/trec:data/trec --task=imdb:imdb.jsonl \
      --task_sequence_length=imdb=256 --task_truncation=imdb=head_tail \
      --then_finetune --output_dir=runs/mfit

--task=NAME:TRAIN_SPEC[:TEST_SPEC]; specs as in recipes/finetune.py
(`tfds:NAME` allowed). Validation is carved from each task's training data.
"""

import recipe_main  # noqa: E402  (first: starts TensorFlow quietly)

from absl import flags  # noqa: E402

import kerasbert  # noqa: E402
from config_flags import config_from_flags  # noqa: E402
from config_flags import define_config_flags  # noqa: E402
from config_flags import define_long_text_flag  # noqa: E402
from config_flags import long_text_settings  # noqa: E402
from kerasbert.training.multitask import multitask_summary  # noqa: E402

define_config_flags(kerasbert.MultiTaskConfig)
define_long_text_flag()
recipe_main.define_recipe_flags()
flags.DEFINE_multi_string("task", None, "NAME:TRAIN_SPEC[:TEST_SPEC], repeatable (two or more).")
flags.DEFINE_multi_string("task_sequence_length", [], "NAME=LENGTH, overriding --sequence_length.")
flags.DEFINE_multi_string("task_truncation", [], "NAME=head|tail|head_tail, overriding --truncation.")
flags.DEFINE_multi_string("task_train_examples", [], "NAME=N: a seeded subset of N training "
                          "examples, overriding --train_examples.")
flags.DEFINE_string("output_dir", None, "Output directory.")
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
    config = config_from_flags(kerasbert.MultiTaskConfig)
    config = config.replace(**long_text_settings())
    read = dict(text_fields=list(config.text_fields), label_field=config.label_field,
                data_dir=config.data_dir, empty_text=config.empty_text)
    lengths = per_task("task_sequence_length", FLAGS.task_sequence_length, int)
    truncations = per_task("task_truncation", FLAGS.task_truncation)
    subsets = per_task("task_train_examples", FLAGS.task_train_examples, int)
    if subsets and config.train_examples_per_class:
        raise ValueError("--task_train_examples and --train_examples_per_class both choose a "
                         "subset; give one of them.")
    tasks = {}
    for value in FLAGS.task:
        name, train_spec, test_spec = parse_task(value)
        if name in tasks:
            raise ValueError(f"--task names {name!r} twice; task names must be unique.")
        train = kerasbert.read_labeled_texts(train_spec, "train", **read)
        subset = subsets.get(name, config.train_examples)
        if subset:
            train = train.sample(subset, seed=config.seed)
        elif config.train_examples_per_class:
            train = train.sample_per_class(config.train_examples_per_class, seed=config.seed)
        validation = None
        if config.validation_fraction > 0:
            train, validation = train.split(config.validation_fraction, seed=config.seed)
        test = None
        if test_spec:
            test = kerasbert.read_labeled_texts(
                test_spec, "test", label_names=train.label_names, **read
            )
        tasks[name] = kerasbert.TaskData(
            train, validation, test, sequence_length=lengths.get(name),
            truncation=truncations.get(name),
        )
    unknown = (set(lengths) | set(truncations) | set(subsets)) - set(tasks)
    if unknown:
        raise ValueError(f"Per-task flags name unknown tasks {sorted(unknown)}; tasks: {sorted(tasks)}.")
    metrics = kerasbert.multitask_fine_tune(config, tasks, FLAGS.output_dir)
    for line in multitask_summary(metrics, FLAGS.output_dir):
        print(line)


if __name__ == "__main__":
    recipe_main.run(main, required=["task", "output_dir"])
