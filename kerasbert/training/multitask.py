"""Multi-task fine-tuning, then optional per-task fine-tuning (Table 7)."""

import dataclasses
import math


from kerasbert.backbones import load_backbone
from kerasbert.data.batching import make_batches
from kerasbert.optimizers.paper_optimizer import build_optimizer
from kerasbert.data.batching import worker_share
from kerasbert.data.task_sampling import concatenate_task_batches
from kerasbert.data.task_sampling import mix_task_batches
from kerasbert.data.task_sampling import task_weights
from kerasbert.export import export_serving
from kerasbert.models.multi_task_classifier import MultiTaskClassifier
from kerasbert.text.classifier_preprocessor import ClassifierPreprocessor
from kerasbert.training import arguments
from kerasbert.training.distribute import barrier
from kerasbert.training.fine_tuning import check_word_pieces
from kerasbert.training.fine_tuning import fine_tune
from kerasbert.training.fingerprint import labeled_texts_identity
from kerasbert.training.fingerprint import path_identity
from kerasbert.training.precision import check_precision
from kerasbert.training.training_run import TrainingRun
from kerasbert.training.training_loop import DEFAULT_CHECKPOINT_EVERY_STEPS

# Settings that do not change the result: a rerun may change them freely.
RESULT_NEUTRAL = ("output_dir", "backbone", "export", "checkpoint_every_steps", "overwrite", "verbose")


@dataclasses.dataclass
class TaskData:
    """One task of a multi-task run.

    Attributes:
        train: `LabeledTexts`. Training data.
        validation: `LabeledTexts` or None. Validated every epoch.
        test: `LabeledTexts` or None. Evaluated at the end.
        sequence_length: int. This task's input length.
        truncation: str. `"head"`, `"tail"` or `"head_tail"`.
        head_length: int. Head pieces under `"head_tail"`.
    """

    train: object
    validation: object = None
    test: object = None
    sequence_length: int = 512
    truncation: str = "head"
    head_length: int = 128


def multitask_fine_tune(
    backbone,
    tasks,
    output_dir,
    *,
    sampling="proportional",
    alpha=0.5,
    layers=-1,
    combine="concat",
    dropout=0.1,
    learning_rate=2e-5,
    batch_size=24,
    epochs=4,
    warmup_proportion=0.1,
    layer_decay=1.0,
    layer_decay_convention="paper",
    then_finetune=False,
    finetune_epochs=1,
    finetune_learning_rate=None,
    seed=0,
    mixed_precision=None,
    jit_compile=False,
    strategy=None,
    per_worker_input=False,
    export=True,
    checkpoint_every_steps=DEFAULT_CHECKPOINT_EVERY_STEPS,
    overwrite=False,
    callbacks=None,
    verbose=1,
):
    """Train one shared encoder with a head per task, then fine-tune per task.

    Joint phase: each step draws a task (`sampling`: proportional to its
    training size, uniform, or size^alpha) and trains on a batch of that
    task only; an epoch is Σ ceil(n_t / batch_size) steps; every task is
    validated every epoch (`val_{task}_accuracy`). Then, with
    `then_finetune`, each task starts from the shared encoder and its own
    head and is fine-tuned alone for `finetune_epochs` at
    `finetune_learning_rate` (default: half of `learning_rate`), keeping the
    best epoch on its validation data.

    Writes `output_dir/metrics.json` (settings, joint per-epoch metrics,
    joint validation/test accuracy and error per task, and the per-task
    fine-tuning results), `shared_backbone/` (a preset `load_backbone`
    accepts), `saved_model_{task}/` per task for the joint model, and
    `finetuned_{task}/` (a full `fine_tune` run directory) per task.
    `output_dir` is a run directory (see `fine_tune`): locked,
    fingerprinted, resumed exactly at the last step checkpoint of the joint
    phase (in `joint/`) and finished stage by stage.

    Args:
        backbone: str. A spec for `kerasbert.load_backbone`.
        tasks: dict. Task name → `TaskData`.
        output_dir: str. Where everything goes.
        sampling, alpha: see `kerasbert.data.task_sampling.task_weights`.
        layers, combine, dropout: see `MultiTaskClassifier`.
        learning_rate, batch_size, epochs, warmup_proportion, layer_decay,
        layer_decay_convention: as in `fine_tune`, for the joint phase.
        then_finetune: bool. Run the per-task fine-tuning phase.
        finetune_epochs: int. Epochs of per-task fine-tuning.
        finetune_learning_rate: float or None. Its peak rate.
        seed: int. Seeds weights, shuffling and task sampling.
        mixed_precision, jit_compile: as in `fine_tune`, for both phases.
        strategy: `tf.distribute.Strategy` or None; see `fine_tune` (also
            used for the per-task phase).
        per_worker_input: bool. Each worker reads its own share of every
            task's texts (see `fine_tune`).
        export: bool. Write per-task SavedModels.
        checkpoint_every_steps: int. Steps between mid-epoch checkpoints.
        overwrite: bool. Clear an `output_dir` that holds another run.
        callbacks: list of Keras callbacks or None, for the joint phase.
        verbose: int. 0 silent, 1 progress bars, 2 a line per epoch.

    Returns:
        The dict written to `metrics.json`.
    """
    settings = {k: v for k, v in locals().items() if k not in ("tasks", "strategy", "callbacks")}
    settings["tasks"] = {
        name: {"train_examples": len(task.train), "sequence_length": task.sequence_length,
               "truncation": task.truncation, "head_length": task.head_length}
        for name, task in tasks.items()
    }
    check_multitask_arguments(settings, tasks)
    data = {
        name: {split: labeled_texts_identity(getattr(task, split))
               for split in ("train", "validation", "test")}
        for name, task in tasks.items()
    }
    data["backbone"] = path_identity(backbone)
    with TrainingRun(output_dir, settings, data, result_neutral=RESULT_NEUTRAL,
                     strategy=strategy, seed=seed, overwrite=overwrite) as run:
        finished = run.finished_metrics(*(f"exported_{n}" for n in tasks) if export else ())
        if finished is not None:
            return finished
        strategy = run.strategy
        steps_per_epoch = sum(math.ceil(len(task.train) / batch_size) for task in tasks.values())
        backbone_model, tokenizer = None, None

        def build_model():
            nonlocal backbone_model, tokenizer
            backbone_model, tokenizer = load_backbone(backbone, dtype=mixed_precision)
            return MultiTaskClassifier(
                backbone_model,
                {name: len(task.train.label_names) for name, task in tasks.items()},
                layers=layers, combine=combine, dropout=dropout,
            )

        model = run.build(
            build_model,
            lambda model: build_optimizer(
                model, learning_rate, epochs * steps_per_epoch, warmup_proportion,
                layer_decay=layer_decay, layer_decay_convention=layer_decay_convention,
            ),
            mixed_precision,
        )
        for task in tasks.values():
            arguments.sequence_length_fits(task.sequence_length, backbone_model)
            for split in (task.train, task.validation, task.test):
                check_word_pieces(tokenizer, split)
        preprocessors = {
            name: ClassifierPreprocessor(
                tokenizer, sequence_length=task.sequence_length, truncation=task.truncation,
                head_length=task.head_length,
            )
            for name, task in tasks.items()
        }

        def batches(name, data, training, context=None):
            examples, size = worker_share(data.to_tf_dataset(), batch_size, context)
            return make_batches(
                examples, preprocessors[name], size, shuffle=training,
                seed=seed, bucket=training, pad_to_boundaries=jit_compile,
            )

        weights = task_weights(
            {name: len(task.train) for name, task in tasks.items()}, sampling, alpha
        )
        validation = {n: t.validation for n, t in tasks.items() if t.validation is not None}

        def train_stream(context=None):
            # The same seed on every worker: all draw the same task per step.
            return mix_task_batches(
                {name: batches(name, task.train, True, context) for name, task in tasks.items()},
                weights, seed,
            )

        def validation_stream():
            return concatenate_task_batches(
                {name: batches(name, data, False) for name, data in validation.items()},
                all_tasks=list(tasks),
            )

        loop, joint_trained = run.train(
            model, train_stream, validation_stream if validation else None,
            steps_per_epoch=steps_per_epoch, epochs=epochs, stage="joint_trained",
            directory=run.directory.file("joint"), checkpoint_every_steps=checkpoint_every_steps,
            jit_compile=jit_compile, per_worker_input=per_worker_input, callbacks=callbacks,
            verbose=verbose,
        )
        directory = run.directory
        if not directory.done("joint_evaluated"):
            joint = {}
            for name, task in tasks.items():
                results = {}
                for split, data in (("validation", task.validation), ("test", task.test)):
                    if data is not None:
                        evaluated = loop.evaluate(concatenate_task_batches(
                            {name: batches(name, data, False)}, all_tasks=list(tasks)))
                        accuracy = evaluated[f"{name}_accuracy"]
                        results[split] = {"accuracy": accuracy, "error": 1 - accuracy}
                joint[name] = results
            directory.finish("joint_evaluated", joint)
        for name, task in tasks.items():
            if export and not directory.done(f"exported_{name}"):
                with directory.atomic(f"saved_model_{name}") as path:
                    export_serving(model.task_model(name), preprocessors[name], path,
                                   task.train.label_names)
                directory.finish(f"exported_{name}")
        shared_dir = directory.file("shared_backbone")
        run.save_preset("shared_backbone", "shared_backbone", backbone_model, tokenizer)
        barrier(strategy)  # the chief's shared_backbone is complete before workers read it
        finetuned = {}
        if then_finetune:
            for name, task in tasks.items():
                # A run directory of its own: resumes and finishes by itself.
                result = fine_tune(
                    shared_dir, task.train, directory.file(f"finetuned_{name}"),
                    validation=task.validation, test=task.test,
                    sequence_length=task.sequence_length, truncation=task.truncation,
                    head_length=task.head_length, layers=layers, combine=combine,
                    dropout=dropout,
                    learning_rate=finetune_learning_rate or learning_rate / 2,
                    batch_size=batch_size, epochs=finetune_epochs,
                    warmup_proportion=warmup_proportion, layer_decay=layer_decay,
                    layer_decay_convention=layer_decay_convention, seed=seed, export=export,
                    mixed_precision=mixed_precision, jit_compile=jit_compile,
                    head_weights=model.get_layer(f"{name}_logits").get_weights(),
                    checkpoint_every_steps=checkpoint_every_steps,
                    strategy=strategy, per_worker_input=per_worker_input, verbose=verbose,
                )
                finetuned[name] = {
                    k: result[k] for k in ("validation", "test", "best_epoch", "train_seconds")
                    if k in result
                }
        return run.write_metrics({
            "task_weights": weights,
            "joint_train_seconds": joint_trained["train_seconds"],
            "joint_epochs": joint_trained["history"],
            "joint": directory.result("joint_evaluated"),
            "finetuned": finetuned,
        })


def check_multitask_arguments(settings, tasks):
    """Raise a `ValueError` naming the first `multitask_fine_tune` argument out of range."""
    a = settings
    if not tasks:
        raise ValueError("`tasks` must hold at least one task.")
    for name in ("batch_size", "epochs", "finetune_epochs", "checkpoint_every_steps"):
        arguments.positive_int(name, a[name])
    arguments.positive_number("learning_rate", a["learning_rate"])
    if a["finetune_learning_rate"] is not None:
        arguments.positive_number("finetune_learning_rate", a["finetune_learning_rate"])
    arguments.in_range("warmup_proportion", a["warmup_proportion"], 0, 1, high_open=True)
    arguments.in_range("dropout", a["dropout"], 0, 1, high_open=True)
    arguments.in_range("layer_decay", a["layer_decay"], 0, 1, low_open=True)
    check_precision(a["mixed_precision"])
    for name, task in tasks.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(
                f"Task names must be identifiers (letters, digits, _). Received: {name!r}"
            )
        arguments.positive_int(f"sequence_length of task {name}", task.sequence_length)
        arguments.several_classes(task.train)
        for split in (task.validation, task.test):
            if split is not None and split.label_names != task.train.label_names:
                raise ValueError(
                    f"Task {name}: {split.source} has label vocabulary {split.label_names}, "
                    f"but its training data has {task.train.label_names}."
                )
