"""Multi-task fine-tuning, then optional per-task fine-tuning (Table 7)."""

import dataclasses
import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from kerasbert.backbones import load_backbone
from kerasbert.data.batching import make_batches
from kerasbert.data.task_sampling import concatenate_task_batches
from kerasbert.data.task_sampling import mix_task_batches
from kerasbert.data.task_sampling import task_weights
from kerasbert.export import export_serving
from kerasbert.models.multi_task_classifier import MultiTaskClassifier
from kerasbert.text.classifier_preprocessor import ClassifierPreprocessor
from kerasbert.training import callbacks as run_callbacks
from kerasbert.training.fine_tuning import build_optimizer
from kerasbert.training.distribute import output_dir_for
from kerasbert.training.fine_tuning import fine_tune
from kerasbert.training.precision import check_precision
from kerasbert.training.precision import with_loss_scaling


@dataclasses.dataclass
class Task:
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


def task_accuracy(model, task, batches):
    """Accuracy of `task`'s head over batches of `(features, labels)`."""
    correct = total = 0
    for features, labels in batches:
        logits = model.predict_on_batch(features)[task]
        correct += int(np.sum(np.argmax(logits, axis=-1) == np.asarray(labels)))
        total += len(labels)
    return correct / total


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
    export=True,
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

    Args:
        backbone: str. A spec for `kerasbert.load_backbone`.
        tasks: dict. Task name → `Task`.
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
        export: bool. Write per-task SavedModels.
        verbose: int. Keras verbosity.

    Returns:
        The dict written to `metrics.json`.
    """
    settings = {k: v for k, v in locals().items() if k not in ("tasks", "strategy")}
    settings["tasks"] = {
        name: {"train_examples": len(task.train), "sequence_length": task.sequence_length,
               "truncation": task.truncation}
        for name, task in tasks.items()
    }
    check_precision(mixed_precision)
    strategy = strategy or tf.distribute.get_strategy()
    output_dir = output_dir_for(strategy, output_dir)
    os.makedirs(output_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    steps_per_epoch = sum(math.ceil(len(task.train) / batch_size) for task in tasks.values())
    with strategy.scope():
        backbone_model, tokenizer = load_backbone(backbone, dtype=mixed_precision)
        model = MultiTaskClassifier(
            backbone_model, {name: len(task.train.label_names) for name, task in tasks.items()},
            layers=layers, combine=combine, dropout=dropout,
        )
        optimizer = build_optimizer(
            model, learning_rate, epochs * steps_per_epoch, warmup_proportion,
            layer_decay=layer_decay, layer_decay_convention=layer_decay_convention,
        )
        optimizer = with_loss_scaling(optimizer, mixed_precision)
        model.compile(optimizer=optimizer, jit_compile=jit_compile)
    preprocessors = {
        name: ClassifierPreprocessor(
            tokenizer, sequence_length=task.sequence_length, truncation=task.truncation,
            head_length=task.head_length,
        )
        for name, task in tasks.items()
    }

    def batches(name, data, training):
        return make_batches(
            data.to_tf_dataset(), preprocessors[name], batch_size, shuffle=training,
            seed=seed, bucket=training, pad_to_boundaries=jit_compile,
        )

    weights = task_weights({name: len(task.train) for name, task in tasks.items()}, sampling, alpha)
    train_stream = mix_task_batches(
        {name: batches(name, task.train, True) for name, task in tasks.items()}, weights, seed
    )
    validation = {n: t.validation for n, t in tasks.items() if t.validation is not None}
    validation_stream = None
    if validation:
        validation_stream = concatenate_task_batches(
            {name: batches(name, data, False) for name, data in validation.items()}
        )
    started = time.time()
    model.fit(
        train_stream,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        validation_data=validation_stream,
        shuffle=False,  # the stream is already shuffled and mixed
        callbacks=run_callbacks.fine_tuning_callbacks(os.path.join(output_dir, "joint")),
        verbose=verbose,
    )
    metrics = {
        "settings": settings,
        "task_weights": weights,
        "joint_train_seconds": time.time() - started,
        "joint_epochs": run_callbacks.read_epoch_history(os.path.join(output_dir, "joint")),
        "joint": {},
        "finetuned": {},
    }
    for name, task in tasks.items():
        results = {}
        for split, data in (("validation", task.validation), ("test", task.test)):
            if data is not None:
                accuracy = task_accuracy(model, name, batches(name, data, False))
                results[split] = {"accuracy": accuracy, "error": 1 - accuracy}
        metrics["joint"][name] = results
        if export:
            export_serving(
                model.task_model(name), preprocessors[name],
                os.path.join(output_dir, f"saved_model_{name}"), task.train.label_names,
            )
    shared_dir = os.path.join(output_dir, "shared_backbone")
    backbone_model.save_to_preset(shared_dir)
    tokenizer.save_to_preset(shared_dir)
    if then_finetune:
        for name, task in tasks.items():
            result = fine_tune(
                shared_dir, task.train, os.path.join(output_dir, f"finetuned_{name}"),
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
                strategy=strategy, verbose=verbose,
            )
            metrics["finetuned"][name] = {
                k: result[k] for k in ("validation", "test", "best_epoch", "train_seconds")
                if k in result
            }
    with open(os.path.join(output_dir, "metrics.json"), "w") as file:
        json.dump(metrics, file, indent=2, default=str)
    return metrics
