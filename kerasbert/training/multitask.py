"""Multi-task fine-tuning, then optional per-task fine-tuning (Table 7)."""

import dataclasses
import math

from kerasbert.backbones import load_backbone
from kerasbert.data.batching import make_batches
from kerasbert.data.batching import worker_share
from kerasbert.data.task_sampling import concatenate_task_batches
from kerasbert.data.task_sampling import mix_task_batches
from kerasbert.data.task_sampling import task_weights
from kerasbert.export import export_serving
from kerasbert.models.multi_task_classifier import MultiTaskClassifier
from kerasbert.text.classifier_preprocessor import ClassifierPreprocessor
from kerasbert.training.configs import FineTuneConfig
from kerasbert.training.configs import MultiTaskConfig
from kerasbert.training.distribute import barrier
from kerasbert.training.driver import run_experiment
from kerasbert.training.experiment import Experiment
from kerasbert.training.fine_tuning import check_splits
from kerasbert.training.fine_tuning import check_word_pieces
from kerasbert.training.fine_tuning import fine_tune
from kerasbert.training.fine_tuning import optimizer_for
from kerasbert.training.fingerprint import labeled_texts_identity
from kerasbert.training.fingerprint import path_identity
from kerasbert.utils import arguments

# What a task may set for itself; the rest are the run's settings.
TASK_TEXT_SETTINGS = ("sequence_length", "truncation", "head_length")


@dataclasses.dataclass
class TaskData:
    """One task of a multi-task run.

    Attributes:
        train: `LabeledTexts`. Training data.
        validation: `LabeledTexts` or None. Validated every epoch.
        test: `LabeledTexts` or None. Evaluated at the end.
        sequence_length: int or None. This task's input length (default:
            the run's `sequence_length`).
        truncation: str or None. `"head"`, `"tail"` or `"head_tail"`
            (default: the run's `truncation`).
        head_length: int or None. Head pieces under `"head_tail"` (default:
            the run's `head_length`).
    """

    train: object
    validation: object = None
    test: object = None
    sequence_length: int = None
    truncation: str = None
    head_length: int = None


def multitask_fine_tune(config=None, tasks=None, output_dir=None, *, strategy=None,
                        callbacks=None, **settings):
    """Train one shared encoder with a head per task, then fine-tune per task.

    Joint phase: each step draws a task (`sampling`: proportional to its
    training size, uniform, or size^alpha) and trains on a batch of that
    task only; an epoch is Σ ceil(n_t / batch_size) steps; every task is
    validated every epoch (`val_{task}_accuracy`). Then, with
    `then_finetune`, each task starts from the shared encoder and its own
    head and is fine-tuned alone (`fine_tune`, with the same settings) for
    `finetune_epochs` at `finetune_learning_rate` (default: half of
    `learning_rate`), keeping the best epoch on its validation data.

    Settings come as a `MultiTaskConfig` or as its fields by keyword: the
    optimizer, schedule, layer-wise decay, weight decay, sparse updates,
    classifier (layers, combine, dropout, freezing), long-text and
    precision settings are those of `fine_tune`. The text settings are every
    task's defaults; a `TaskData` may set its own length and truncation.
    Both phases train `[CLS]` heads on head/tail/head+tail inputs:
    `truncation="segments"` (and with it the segment settings) and
    `classifier="feature_bilstm"` are refused in one line.

    Writes `output_dir/metrics.json` (settings, joint per-epoch metrics,
    joint validation/test accuracy and error per task, and the per-task
    fine-tuning results), `shared_backbone/` (a preset `load_backbone`
    accepts), `saved_model_{task}/` per task for the joint model, and
    `finetuned_{task}/` (a full `fine_tune` run directory) per task.
    `output_dir` is a run directory (see `fine_tune`): locked,
    fingerprinted, resumed exactly at the last step checkpoint of the joint
    phase (in `joint/`) and finished stage by stage.

    Args:
        config: a `MultiTaskConfig`, or str: the backbone spec.
        tasks: dict. Task name → `TaskData`; at least two tasks.
        output_dir: str. Where everything goes.
        strategy: `tf.distribute.Strategy` or None; see `fine_tune` (also
            used for the per-task phase).
        callbacks: list of Keras callbacks or None, for the joint phase.
        **settings: fields of `MultiTaskConfig`, applied over `config`.

    Returns:
        The dict written to `metrics.json`.
    """
    if isinstance(config, str):
        settings["backbone"], config = config, None
    config = MultiTaskConfig.resolve(config, settings, caller="multitask_fine_tune")
    if output_dir is None:
        raise ValueError("`multitask_fine_tune` needs an `output_dir`.")
    experiment = MultiTaskExperiment(config, tasks)
    return run_experiment(experiment, output_dir, strategy=strategy, callbacks=callbacks)


class MultiTaskExperiment(Experiment):
    """The joint phase of `multitask_fine_tune`, and the per-task runs after it."""

    train_directory = "joint"

    def __init__(self, config, tasks):
        self.config = config
        self.tasks = check_tasks(config, tasks)
        self.task_text = {
            name: {key: getattr(task, key) if getattr(task, key) is not None
                   else getattr(config, key) for key in TASK_TEXT_SETTINGS}
            for name, task in self.tasks.items()
        }
        for name, text in self.task_text.items():
            arguments.positive_int(f"sequence_length of task {name}", text["sequence_length"])
            if text["truncation"] not in ("head", "tail", "head_tail"):
                raise ValueError(
                    f"Task {name}: the joint phase reads one sequence per text; truncation "
                    f"must be head, tail or head_tail. Received: {text['truncation']!r}")
        if config.truncation == "segments":
            raise ValueError(
                "`truncation` must be head, tail or head_tail for multi-task training (one "
                "sequence per text and task). Received: 'segments'")
        if config.classifier != "cls":
            raise ValueError(
                "`classifier` must be 'cls' for multi-task training (one softmax head per "
                f"task on [CLS]). Received: {config.classifier!r}")
        self.weights = task_weights(
            {name: len(task.train) for name, task in self.tasks.items()}, config.sampling,
            config.alpha)
        self.model = self.backbone = self.tokenizer = self.preprocessors = None

    def data_identity(self):
        data = {
            name: {split: labeled_texts_identity(getattr(task, split))
                   for split in ("train", "validation", "test")}
            for name, task in self.tasks.items()
        }
        data["backbone"] = path_identity(self.config.backbone)
        data["task_text"] = self.task_text
        return data

    def recorded_settings(self):
        return {**self.config.to_dict(), "tasks": {
            name: {"train_examples": len(task.train), **self.task_text[name]}
            for name, task in self.tasks.items()}}

    def finished_stages(self):
        return tuple(f"exported_{n}" for n in self.tasks) if self.config.export else ()

    def build_model(self):
        c = self.config
        self.backbone, self.tokenizer = load_backbone(c.backbone, dtype=c.mixed_precision)
        self.model = MultiTaskClassifier(
            self.backbone,
            {name: len(task.train.label_names) for name, task in self.tasks.items()},
            layers=list(c.layers) if isinstance(c.layers, tuple) else c.layers,
            combine=c.combine, dropout=c.dropout, freeze_backbone=c.freeze_backbone,
        )
        return self.model

    def steps_per_epoch(self):
        return sum(math.ceil(len(task.train) / self.config.batch_size)
                   for task in self.tasks.values())

    def build_optimizer(self, model):
        return optimizer_for(model, self.config, self.steps_per_epoch())

    def check_model(self, model):
        for name, task in self.tasks.items():
            arguments.sequence_length_fits(self.task_text[name]["sequence_length"],
                                           self.backbone)
            arguments.training_batch_fits(self.config.batch_size,
                                          self.task_text[name]["sequence_length"], self.backbone,
                                          strategy=model.distribute_strategy)
            for split in (task.train, task.validation, task.test):
                check_word_pieces(self.tokenizer, split)
        self.preprocessors = {
            name: ClassifierPreprocessor(self.tokenizer, **self.task_text[name])
            for name in self.tasks
        }

    def _batches(self, name, data, training, context=None):
        examples, size = worker_share(data.to_tf_dataset(), self.config.batch_size, context)
        return make_batches(
            examples, self.preprocessors[name], size, shuffle=training,
            seed=self.config.seed, bucket=training, pad_to_boundaries=self.config.jit_compile,
        )

    def train_stream(self, context=None):
        # The same seed on every worker: all draw the same task per step.
        return mix_task_batches(
            {name: self._batches(name, task.train, True, context)
             for name, task in self.tasks.items()},
            self.weights, self.config.seed,
        )

    def validation_stream(self):
        validation = {n: t.validation for n, t in self.tasks.items() if t.validation is not None}
        if not validation:
            return None
        return lambda: concatenate_task_batches(
            {name: self._batches(name, data, False) for name, data in validation.items()},
            all_tasks=list(self.tasks),
        )

    def after_training(self, run, loop, trained):
        directory, c = run.directory, self.config
        if not directory.done("tested"):
            joint = {}
            for name, task in self.tasks.items():
                results = {}
                for split, data in (("validation", task.validation), ("test", task.test)):
                    if data is not None:
                        evaluated = loop.evaluate(concatenate_task_batches(
                            {name: self._batches(name, data, False)}, all_tasks=list(self.tasks)))
                        accuracy = evaluated[f"{name}_accuracy"]
                        results[split] = {"accuracy": accuracy, "error": 1 - accuracy}
                joint[name] = results
            directory.finish("tested", joint)
        for name, task in self.tasks.items():
            if c.export and not directory.done(f"exported_{name}"):
                with directory.atomic(f"saved_model_{name}") as path:
                    export_serving(self.model.task_model(name), self.preprocessors[name], path,
                                   task.train.label_names)
                directory.finish(f"exported_{name}", files=[f"saved_model_{name}"])
        run.save_preset("saved_preset", "shared_backbone", self.backbone, self.tokenizer)
        barrier(run.strategy)  # the chief's shared_backbone is complete before workers read it
        finetuned = {}
        if c.then_finetune:
            finetuned = self._finetune_each(run)
        return {
            "task_weights": self.weights,
            "joint_train_seconds": trained["train_seconds"],
            "joint_epochs": trained["history"],
            "joint": directory.result("tested"),
            "finetuned": finetuned,
        }

    def written_entries(self):
        # Each task's own fine-tuning run directory.
        return tuple(f"finetuned_{name}" for name in self.tasks) if self.config.then_finetune \
            else ()

    def _finetune_each(self, run):
        c = self.config
        shared = {name: getattr(c, name) for name in FineTuneConfig.field_names()
                  if name in c.field_names()}
        finetuned = {}
        for name, task in self.tasks.items():
            config = FineTuneConfig(**{
                **shared, **self.task_text[name],
                "backbone": run.directory.file("shared_backbone"),
                "learning_rate": c.finetune_learning_rate or c.learning_rate / 2,
                "epochs": c.finetune_epochs,
            })
            # A run directory of its own: resumes and finishes by itself.
            result = fine_tune(
                config, task.train, run.directory.file(f"finetuned_{name}"),
                validation=task.validation, test=task.test, strategy=run.strategy,
                head_weights=self.model.get_layer(f"{name}_logits").get_weights(),
            )
            finetuned[name] = {k: result[k] for k in
                               ("validation", "test", "best_epoch", "train_seconds")
                               if k in result}
        return finetuned

    def summary(self, metrics, output_dir):
        return multitask_summary(metrics, output_dir)


def multitask_summary(metrics, output_dir):
    """The lines a person reads at the end of a multi-task run."""
    lines = []
    for name, results in metrics["joint"].items():
        parts = [f"{split} error {100 * r['error']:.2f}%" for split, r in results.items()]
        lines.append(f"{name} (joint): " + (", ".join(parts) or "no validation or test"))
    for name, result in metrics["finetuned"].items():
        if "test" in result:
            lines.append(f"{name} (fine-tuned alone): test error "
                         f"{100 * result['test']['error']:.2f}%")
    lines.append(f"outputs: {output_dir} (metrics.json, shared_backbone/"
                 + (", saved_model_<task>/" if metrics["settings"]["export"] else "")
                 + (", finetuned_<task>/" if metrics["finetuned"] else "") + ")")
    return lines


def check_tasks(config, tasks):
    """`tasks` if it maps two or more identifier names to valid `TaskData`."""
    if not isinstance(tasks, dict) or len(tasks) < 2:
        raise ValueError(
            "Multi-task training needs at least two tasks (one task is `fine_tune`). "
            f"Received: {sorted(tasks) if isinstance(tasks, dict) else type(tasks).__name__}")
    for name, task in tasks.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(
                f"Task names must be identifiers (letters, digits, _). Received: {name!r}")
        if not isinstance(task, TaskData):
            raise ValueError(f"Task {name} must be a kerasbert.TaskData. Received: "
                             f"{type(task).__name__}")
        try:
            check_splits(task.train, task.validation, task.test)
        except ValueError as error:
            raise ValueError(f"Task {name}: {error}") from None
    return tasks
