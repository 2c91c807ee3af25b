"""One fine-tuning run: train, keep the best epoch, test, export."""

import inspect
import math
import time

from absl import logging

from kerasbert.data.batching import make_batches
from kerasbert.data.batching import worker_share
from kerasbert.data.datasets import LabeledTexts
from kerasbert.export import export_serving
from kerasbert.models.backbone_classifier import BackboneClassifier
from kerasbert.models.build_classifier import CLASSIFIERS
from kerasbert.models.build_classifier import build_classifier
from kerasbert.models.feature_bilstm_classifier import FeatureBiLSTMClassifier
from kerasbert.models.layer_selected_classifier import LayerSelectedClassifier
from kerasbert.models.load_classifier import RUN_PRESET_DIR
from kerasbert.models.segment_pooling_classifier import SegmentPoolingClassifier
from kerasbert.text.classifier_preprocessor import ClassifierPreprocessor
from kerasbert.optimizers.paper_optimizer import SCHEDULES
from kerasbert.optimizers.paper_optimizer import build_optimizer
from kerasbert.text.vocabulary_coverage import unknown_piece_rate
from kerasbert.text.vocabulary_coverage import texts_without_word_pieces
from kerasbert.training import arguments
from kerasbert.training.fingerprint import array_identity
from kerasbert.training.fingerprint import labeled_texts_identity
from kerasbert.training.fingerprint import path_identity
from kerasbert.training.precision import check_precision
from kerasbert.training.training_loop import DEFAULT_CHECKPOINT_EVERY_STEPS
from kerasbert.training.training_run import TrainingRun

# `fine_tune` arguments that are data or objects, not settings for metrics.json.
RUN_INPUTS = ("train", "validation", "test", "callbacks", "head_weights", "strategy")
# Settings that do not change the result, or that the data identity already
# covers (the backbone, by path and files): a rerun may change them freely.
RESULT_NEUTRAL = ("output_dir", "backbone", "export", "checkpoint_every_steps", "overwrite", "verbose")
# Arguments that shape the classifier `fine_tune` builds (those of
# `build_classifier`, with their defaults); a classifier passed in brings its own.
MODEL_ARGUMENTS = {
    name: parameter.default
    for name, parameter in inspect.signature(build_classifier).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
}
# Above this share of [UNK] word pieces the vocabulary does not fit the text.
UNKNOWN_RATE_WARNING = 0.05


def fine_tune(
    backbone,
    train,
    output_dir,
    *,
    validation=None,
    test=None,
    sequence_length=512,
    truncation="head",
    head_length=128,
    segment_pooling="mean",
    max_segments=None,
    segment_stride=0,
    classifier="cls",
    layers=-1,
    combine="concat",
    dropout=0.1,
    freeze_backbone=False,
    learning_rate=2e-5,
    batch_size=24,
    epochs=4,
    warmup_proportion=0.1,
    schedule="warmup_linear",
    layer_decay=1.0,
    layer_decay_convention="paper",
    weight_decay=0.0,
    sparse_embedding_updates=False,
    mixed_precision=None,
    jit_compile=False,
    strategy=None,
    per_worker_input=False,
    seed=0,
    export=True,
    checkpoint_every_steps=DEFAULT_CHECKPOINT_EVERY_STEPS,
    overwrite=False,
    head_weights=None,
    callbacks=None,
    verbose=1,
):
    """Fine-tune a BERT classifier with the paper's protocol.

    Adam (β1 0.9, β2 0.999) with linear warmup then linear decay; batches
    padded to their longest member after length bucketing; after training,
    the epoch with the best validation accuracy is restored and tested.

    `output_dir` is a run directory (`kerasbert.training.run_directory`):
    locked while the run is alive, fingerprinted in `run.json` by the
    settings and a hash of the examples, and finished stage by stage. Called
    again with the same arguments, a killed run resumes from its last step
    checkpoint (every `checkpoint_every_steps` steps and every epoch end)
    and ends with the weights and metrics of an uninterrupted run; a
    finished run returns its metrics at once; other settings are refused
    unless `overwrite`.

    `output_dir` receives `run.json`, `metrics.json` (the settings, per-epoch metrics,
    the best epoch, validation and test accuracy and error, which test examples
    it got right (`test.per_example_correct`, a '1' or '0' per example in
    order), and the share of
    training word pieces that are [UNK], logged as a warning above 5 %), `history.csv`,
    TensorBoard `logs/`, `checkpoints/`, `preset/` (the whole fine-tuned
    classifier: encoder, head, preprocessor and label names, which
    `kerasbert.load_classifier(output_dir)` loads back), and, with `export`,
    a raw-text SavedModel in `saved_model/`.

    An epoch is `ceil(len(train) / batch_size)` steps drawn from an endlessly
    reshuffled stream of the training set: bucketing makes the number of
    batches of one pass vary a little, and a fixed epoch length keeps the
    schedule's length exact and gives every step a fixed input position.

    Args:
        backbone: str, a spec for `kerasbert.load_backbone` (the classifier
            is then built from the model arguments below by
            `kerasbert.build_classifier`), or an already-built kerasbert
            classifier with a `ClassifierPreprocessor`. A copy of it, made in
            the strategy's scope, is trained (the given object is left as
            it is, and its weights and config identify the run); it brings
            its own model settings, so the arguments from `sequence_length` to
            `freeze_backbone`, and `mixed_precision`, stay at their defaults.
        train: `kerasbert.LabeledTexts`. Training examples.
        output_dir: str. Where everything is written.
        validation: `kerasbert.LabeledTexts` or None. Used to pick the best
            epoch; without it the last epoch is kept.
        test: `kerasbert.LabeledTexts` or None. Evaluated once at the end.
        sequence_length, truncation, head_length: see
            `kerasbert.ClassifierPreprocessor`. `truncation="segments"` trains
            a `SegmentPoolingClassifier` (the paper's hierarchical method).
        segment_pooling: str. `"mean"`, `"max"` or `"attention"`, under
            `truncation="segments"`.
        max_segments, segment_stride: the preprocessor's `max_segments` and
            `stride` under `truncation="segments"`.
        classifier: str. `"cls"`: softmax on [CLS] states
            (`LayerSelectedClassifier`, or `SegmentPoolingClassifier` under
            segments); `"feature_bilstm"`: the paper's BERT-Feat baseline,
            `FeatureBiLSTMClassifier` on the frozen states of the one layer
            `layers` names.
        layers, combine, dropout, freeze_backbone: see
            `kerasbert.LayerSelectedClassifier`.
        learning_rate: float. The peak learning rate.
        batch_size: int. Examples per training step.
        epochs: int. Passes over the training data.
        warmup_proportion: float. Fraction of steps spent warming up (the
            cut fraction of `"slanted_triangular"`).
        schedule: str. `"warmup_linear"` (`WarmupLinearDecay`) or
            `"slanted_triangular"` (`SlantedTriangular`, ratio 32).
        layer_decay: float. ξ of `kerasbert.LayerwiseDecay`; 1.0 gives every
            layer the same rate. The paper's best is 0.95 at lr 2e-5.
        layer_decay_convention: str. `"paper"` or `"official_code"`, see
            `kerasbert.LayerwiseDecay`.
        weight_decay: float. Decoupled weight decay (AdamW) when > 0, kept off
            LayerNorm and bias variables as in BERT, and scaled per layer.
        sparse_embedding_updates: bool. Update only the word-embedding rows
            each batch looks up, keeping the other rows' Adam moments and
            values (TensorFlow's LazyAdam; `kerasbert.optimizers.FusedAdam`).
            A speed switch that departs from the paper's Adam; not with
            `jit_compile`.
        mixed_precision: str or None. `"mixed_bfloat16"` or `"mixed_float16"`
            (with dynamic loss scaling): the encoder computes in 16 bits, the
            softmax layer and the loss in float32. `None` trains in float32.
        jit_compile: bool. Compile train and evaluation steps with XLA;
            batches are then padded to bucket boundaries to bound the number
            of shapes.
        strategy: `tf.distribute.Strategy` or None. Models and optimizer are
            built in its scope (see `kerasbert.training.distribute`);
            `batch_size` is the global batch. Under multi-worker training
            only the chief writes into `output_dir`, and the other workers
            resume from the chief's checkpoints (a shared file system).
        per_worker_input: bool. Each worker reads its own share of the raw
            training texts (every k-th of k workers) and batches them at the
            per-replica size, instead of one pipeline split by the strategy
            (the default, which gives exactly the single-process batches).
        seed: int. Seeds weights of new layers, dropout and shuffling.
        export: bool. Write the raw-text SavedModel.
        checkpoint_every_steps: int. Steps between mid-epoch checkpoints.
        overwrite: bool. Clear an `output_dir` that holds a run with other
            settings instead of refusing it.
        head_weights: list of arrays or None. Initial `[kernel, bias]` of the
            softmax layer (e.g. a multi-task head), instead of random ones.
        callbacks: list of Keras callbacks or None. Their epoch and batch
            hooks run after the loop's own logging and checkpointing.
        verbose: int. 0 silent, 1 progress bars, 2 a line per epoch.

    Returns:
        The dict written to `metrics.json`.

    Raises:
        ValueError: an argument out of range (named), a `sequence_length`
            beyond the backbone's positions, a training set of one class,
            a text without word pieces, other label vocabularies.
        RunDirectoryError: `output_dir` is in use, or holds other settings.
        NonFiniteLossError: the loss became NaN or infinite.
    """
    settings = {k: v for k, v in locals().items() if k not in RUN_INPUTS}
    built = isinstance(backbone, BackboneClassifier)
    check_fine_tune_arguments(settings, train, validation, test)
    if built:
        check_built_classifier(backbone, settings, train)
        # The classifier's own settings replace the unused defaults.
        for name in MODEL_ARGUMENTS:
            del settings[name]
        settings["backbone"] = f"a built {type(backbone).__name__}"
        settings["classifier_config"] = _described_config(backbone)
    data = {
        "train": labeled_texts_identity(train),
        "validation": labeled_texts_identity(validation),
        "test": labeled_texts_identity(test),
        "backbone": (array_identity(backbone.get_weights()) if built
                     else path_identity(backbone)),
        "head_weights": array_identity(head_weights),
    }
    with TrainingRun(output_dir, settings, data, result_neutral=RESULT_NEUTRAL,
                     strategy=strategy, seed=seed, overwrite=overwrite) as run:
        finished = run.finished_metrics(*(("exported",) if export else ()))
        if finished is not None:
            return finished
        steps_per_epoch = math.ceil(len(train) / batch_size)

        def build_model():
            if built:
                # Train a copy made in the strategy's scope: the caller's
                # classifier (whose weights identify the run) stays as given.
                config = backbone.get_config()
                config["preprocessor"] = backbone.preprocessor
                config["label_names"] = list(train.label_names)
                model = type(backbone).from_config(config)
                model.set_weights(backbone.get_weights())
                return model
            return build_classifier(
                backbone, train.label_names, **{name: settings[name] for name in MODEL_ARGUMENTS}
            )

        model = run.build(
            build_model,
            lambda model: build_optimizer(
                model, learning_rate, epochs * steps_per_epoch, warmup_proportion,
                schedule, layer_decay, layer_decay_convention, weight_decay,
                sparse_embedding_updates,
            ),
            mixed_precision or (_mixed_policy(backbone) if built else None),
        )
        if head_weights is not None:
            model.get_layer("logits").set_weights(head_weights)
        preprocessor = model.preprocessor
        arguments.sequence_length_fits(preprocessor.sequence_length, model.backbone)
        for split in (train, validation, test):
            check_word_pieces(preprocessor.tokenizer, split)
        unknown_rate = unknown_piece_rate(preprocessor.tokenizer, train.texts)
        if unknown_rate > UNKNOWN_RATE_WARNING:
            logging.warning(
                "%.0f %% of the word pieces of the training texts are [UNK] for backbone %r: "
                "its vocabulary does not cover this text (Chinese text needs a Chinese "
                "vocabulary, e.g. the keras-hub preset bert_base_zh or a local directory in "
                "its layout).", 100 * unknown_rate, backbone,
            )

        def batches(data, training, context=None):
            # Evaluation keeps the order; training reshuffles every pass.
            examples, size = worker_share(data.to_tf_dataset(), batch_size, context)
            return make_batches(
                examples, preprocessor, size, shuffle=training,
                seed=seed, bucket=training, pad_to_boundaries=jit_compile,
            )

        # An epoch is `steps_per_epoch` steps of an endlessly reshuffled
        # stream: bucketing makes one pass's batch count vary a little, and a
        # fixed epoch length keeps the schedule's length exact. A finished
        # training only restores its final state (optimizer included).
        monitor = "val_accuracy" if validation is not None else None
        loop, trained = run.train(
            model,
            lambda context=None: batches(train, True, context).repeat(),
            (lambda: batches(validation, False)) if validation is not None else None,
            steps_per_epoch=steps_per_epoch, epochs=epochs, monitor=monitor,
            checkpoint_every_steps=checkpoint_every_steps, jit_compile=jit_compile,
            per_worker_input=per_worker_input, callbacks=callbacks, verbose=verbose,
        )
        loop.restore_best()
        directory = run.directory
        if test is not None and not directory.done("tested"):
            started = time.time()
            result = loop.evaluate(batches(test, False))
            # Which examples it got right: what a paired comparison of two
            # runs on this test set reads (`kerasbert.reproduction.statistics`).
            correct = loop.predicted_classes(batches(test, False)) == test.labels
            directory.finish("tested", {
                "accuracy": result["accuracy"], "error": 1.0 - result["accuracy"],
                "loss": result["loss"], "examples": len(test),
                "per_example_correct": "".join("1" if c else "0" for c in correct),
                "seconds": time.time() - started,
            })
        # The whole fine-tuned classifier (encoder, head, preprocessor, label
        # names): `kerasbert.load_classifier` and `<Class>.from_preset` read
        # it, and `load_backbone` reads its encoder.
        run.save_preset("saved_preset", RUN_PRESET_DIR, model)
        if export and not directory.done("exported"):
            with directory.atomic("saved_model") as path:
                export_serving(model, preprocessor, path, train.label_names)
            directory.finish("exported")

        history = trained["history"]
        for epoch in history:
            if "val_accuracy" in epoch:
                epoch["val_error"] = 1.0 - epoch["val_accuracy"]
        metrics = {"label_names": train.label_names, "epochs": history,
                   "unknown_piece_rate": unknown_rate}
        if monitor:
            best = trained["best"]
            metrics["best_epoch"] = best["epoch"]
            metrics["validation"] = {"accuracy": best["value"], "error": 1.0 - best["value"]}
        if test is not None:
            metrics["test"] = directory.result("tested")
        metrics["train_seconds"] = trained["train_seconds"]
        metrics["resumed_from_step"] = trained["resumed_from_step"]
        return run.write_metrics(metrics)


def check_built_classifier(model, settings, train):
    """Raise when a classifier passed to `fine_tune` cannot be trained as given."""
    shaped = sorted(name for name, default in MODEL_ARGUMENTS.items()
                    if settings[name] != default)
    if shaped:
        raise ValueError(
            f"`fine_tune` was given a built {type(model).__name__}, which brings its own "
            f"model settings; do not also pass {', '.join(shaped)}."
        )
    if not isinstance(model, (LayerSelectedClassifier, SegmentPoolingClassifier,
                              FeatureBiLSTMClassifier)):
        raise ValueError(
            f"`fine_tune` trains a single-task classifier; received a {type(model).__name__} "
            "(use multitask_fine_tune for a MultiTaskClassifier)."
        )
    if not isinstance(model.preprocessor, ClassifierPreprocessor):
        raise ValueError(
            f"The {type(model).__name__} given to `fine_tune` has no preprocessor; build it "
            "with preprocessor=ClassifierPreprocessor(...) or with from_preset."
        )
    if model.label_names is not None and list(model.label_names) != list(train.label_names):
        raise ValueError(
            f"The classifier's label_names {model.label_names} differ from the training "
            f"data's {train.label_names}."
        )
    if model.num_classes != len(train.label_names):
        raise ValueError(
            f"The classifier has {model.num_classes} classes; the training data has "
            f"{len(train.label_names)}: {train.label_names}."
        )


def _mixed_policy(model):
    name = model.backbone.dtype_policy.name
    return name if name.startswith("mixed_") else None


def _described_config(model):
    # Everything that shapes the result except the weights (hashed apart)
    # and the vocabulary (an asset, covered by the weights' embedding table).
    config = {k: v for k, v in model.get_config().items()
              if k not in ("backbone", "preprocessor", "name", "trainable")}
    preprocessor = model.preprocessor.get_config()
    config["preprocessor"] = {k: v for k, v in preprocessor.items()
                              if k not in ("tokenizer", "name")}
    config["backbone"] = {k: v for k, v in model.backbone.get_config().items()
                          if k not in ("name", "dtype")}
    config["dtype_policy"] = model.backbone.dtype_policy.name
    return config


def check_fine_tune_arguments(settings, train, validation, test):
    """Raise a `ValueError` naming the first `fine_tune` argument out of range."""
    a = settings
    for name, split in (("train", train), ("validation", validation), ("test", test)):
        if not isinstance(split, LabeledTexts) and not (split is None and name != "train"):
            raise ValueError(
                f"`{name}` must be a kerasbert.LabeledTexts (read_labeled_texts / "
                f"load_dataset). Received: {type(split).__name__}"
            )
    arguments.one_of("classifier", a["classifier"], CLASSIFIERS)
    arguments.one_of("schedule", a["schedule"], SCHEDULES)
    check_precision(a["mixed_precision"])
    for name in ("batch_size", "epochs", "checkpoint_every_steps"):
        arguments.positive_int(name, a[name])
    arguments.positive_int("sequence_length", a["sequence_length"])
    if a["sequence_length"] < 3:
        raise ValueError(
            "`sequence_length` must be at least 3 ([CLS], a word piece, [SEP]). "
            f"Received: {a['sequence_length']}"
        )
    arguments.positive_int("max_segments", a["max_segments"], allow_none=True)
    arguments.non_negative_int("segment_stride", a["segment_stride"])
    arguments.non_negative_int("head_length", a["head_length"])
    arguments.positive_number("learning_rate", a["learning_rate"])
    arguments.in_range("warmup_proportion", a["warmup_proportion"], 0, 1, high_open=True)
    arguments.in_range("dropout", a["dropout"], 0, 1, high_open=True)
    arguments.in_range("layer_decay", a["layer_decay"], 0, 1, low_open=True)
    arguments.in_range("weight_decay", a["weight_decay"], 0, 1)
    if not isinstance(a["sparse_embedding_updates"], bool):
        raise ValueError("`sparse_embedding_updates` must be True or False. "
                         f"Received: {a['sparse_embedding_updates']!r}")
    frozen = a["freeze_backbone"] or a["classifier"] == "feature_bilstm" or getattr(
        a["backbone"], "freeze_backbone", False)
    if a["sparse_embedding_updates"] and frozen:
        raise ValueError(
            "`sparse_embedding_updates` updates the word embeddings, which `freeze_backbone` "
            "(or the frozen feature_bilstm classifier) keeps frozen; drop one of them."
        )
    if a["sparse_embedding_updates"] and a["jit_compile"]:
        raise ValueError(
            "`sparse_embedding_updates` is not supported with `jit_compile` (the updated rows "
            "are a data-dependent shape; untested under XLA); drop one of them."
        )
    if isinstance(a["seed"], bool) or not isinstance(a["seed"], int):
        raise ValueError(f"`seed` must be an integer. Received: {a['seed']!r}")
    if a["classifier"] == "feature_bilstm":
        if a["truncation"] == "segments":
            raise ValueError(
                '`classifier="feature_bilstm"` reads one sequence per text; it does not '
                'support `truncation="segments"`.'
            )
        if isinstance(a["layers"], str) or (isinstance(a["layers"], (list, tuple))
                                            and len(a["layers"]) != 1):
            raise ValueError(
                '`classifier="feature_bilstm"` reads the states of one layer. '
                f"Received: layers={a['layers']!r}"
            )
    arguments.several_classes(train)
    for split in (validation, test):
        if split is not None and split.label_names != train.label_names:
            raise ValueError(
                f"{split.source} has label vocabulary {split.label_names}, but the "
                f"training data has {train.label_names}. Read it with "
                "label_names=train.label_names."
            )


def check_word_pieces(tokenizer, data):
    """Raise when a text of `data` tokenizes to nothing (an empty text in
    disguise), unless it was read with `empty_text="keep"`."""
    if data is None or data.empty_text == "keep":
        return
    empty = texts_without_word_pieces(tokenizer, data.texts)
    if empty:
        raise ValueError(
            f"{data.where(empty[0])}: the text {data.texts[empty[0]][:40]!r} yields no word "
            f"pieces ({len(empty)} such texts in {data.source}); it would be classified from "
            "[CLS] [SEP] alone. Fix or drop it, or read the data with empty_text='keep'."
        )
