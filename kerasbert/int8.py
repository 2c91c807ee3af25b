"""An int8 raw-text classifier for fast CPU serving: LiteRT, dynamic range.

`export_int8` converts a fine-tuned classifier with Keras' own LiteRT export
(`model.export(format="litert")` with `tf.lite.Optimize.DEFAULT`: int8
weights, activations quantized per batch at run time, XNNPACK kernels) and
writes beside it what raw strings need: the preprocessor (tokenizer
vocabulary, truncation, length) and the label names. `Int8Classifier` loads
that directory with the LiteRT runtime (`pip install "kerasbert[int8]"`) and
classifies batches of strings the way the SavedModel does: tokenized at
once, sorted by length, run in chunks each padded to its own longest text.
"""

import json
import os
import re

import keras
import numpy as np
import tensorflow as tf

from kerasbert.export import CPU_TOKENS_PER_CHUNK

MODEL_FILE = "model.tflite"
PREPROCESSOR_FILE = "preprocessor.json"
DESCRIPTION_FILE = "int8.json"
ARTIFACT_FORMAT = "kerasbert-int8"
ARTIFACT_VERSION = 1
RUNTIME_PACKAGE = "ai-edge-litert"
INSTALL_HINT = f'pip install "kerasbert[int8]" (the package {RUNTIME_PACKAGE})'


def _input_signature(model):
    inputs = model.input
    if not isinstance(inputs, dict):
        raise ValueError(
            "int8 export needs a classifier that reads the preprocessor's dict of "
            f"token_ids / segment_ids / padding_mask; {type(model).__name__} reads "
            f"{type(inputs).__name__}."
        )
    return {name: tf.TensorSpec([None] * len(tensor.shape), tensor.dtype, name=name)
            for name, tensor in inputs.items()}


def export_int8(model, preprocessor, path, label_names, tokens_per_chunk=CPU_TOKENS_PER_CHUNK):
    """Write an int8 raw-text classifier to the directory `path`.

    The encoder's and the head's weights are stored as int8 (the word
    embeddings too, looked up as int8 and scaled), matrix products run on
    int8 with activations quantized per batch; LayerNorm, softmax, GELU and
    the residual sums stay float32. On the 2-core machine this doubles the
    fp32 SavedModel's speed on short texts (see the README's speed
    section). The directory holds `model.tflite`, `preprocessor.json` with
    the tokenizer's vocabulary beside it, and `int8.json` (label names and
    settings, written last: a directory without it is incomplete).

    Args:
        model: a float32 single-output Keras classifier taking the
            preprocessor's dict of tensors and returning logits, e.g.
            `kerasbert.LayerSelectedClassifier` or
            `kerasbert.SegmentPoolingClassifier`.
        preprocessor: the model's `kerasbert.ClassifierPreprocessor`.
        path: str. The output directory (made if missing).
        label_names: list of str. The class names, in logit order.
        tokens_per_chunk: int. Word pieces run at once when classifying
            (rows × the chunk's padded length, at least one text).

    Examples:
    ```python
    import tempfile
    model = kerasbert.LayerSelectedClassifier.from_preset(
        "tiny", label_names=["neg", "pos"], sequence_length=16)
    path = tempfile.mkdtemp()
    kerasbert.export_int8(model, model.preprocessor, path, ["neg", "pos"])
    ```
    """
    if isinstance(tokens_per_chunk, bool) or not isinstance(tokens_per_chunk, int) or (
            tokens_per_chunk < 1):
        raise ValueError(f"`tokens_per_chunk` must be a positive integer. Received: "
                         f"{tokens_per_chunk!r}")
    outputs = model.outputs
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        raise ValueError(
            f"int8 export takes a classifier with one (batch, classes) output; "
            f"{type(model).__name__} has {len(outputs)} outputs: export each task's "
            "classifier on its own."
        )
    if outputs[0].shape[-1] != len(label_names):
        raise ValueError(f"The model has {outputs[0].shape[-1]} outputs but "
                         f"{len(label_names)} label names were given: {list(label_names)}.")
    # The encoder's policy: a classifier keeps its own layers in float32.
    policy = keras.dtype_policies.get(getattr(model, "backbone", model).dtype_policy)
    if policy.compute_dtype != "float32":
        raise ValueError(
            f"int8 export quantizes a float32 model; this one computes in "
            f"{policy.compute_dtype} ({policy.name}). Load it back as float32 first: "
            "kerasbert.load_classifier(path, dtype='float32')."
        )
    os.makedirs(path, exist_ok=True)
    if os.path.exists(os.path.join(path, DESCRIPTION_FILE)):
        # Marks a complete directory: gone until the new files are all written.
        os.remove(os.path.join(path, DESCRIPTION_FILE))
    try:
        # Builtin ops only: the LiteRT runtime has no TensorFlow (Flex) ops.
        model.export(
            os.path.join(path, MODEL_FILE), format="litert", verbose=False,
            input_signature=[_input_signature(model)],
            optimizations=[tf.lite.Optimize.DEFAULT],
            target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]},
        )
    except Exception as error:  # the converter raises its own ConverterError
        if "ConverterError" not in type(error).__name__:
            raise
        ops = sorted(set(re.findall(r"'(tf\.\w+)' op", str(error))))
        raise ValueError(
            f"{type(model).__name__} does not convert to LiteRT's builtin ops"
            + (f" (needs {', '.join(ops)})" if ops else "") + "; serve it with the fp32 "
            "SavedModel instead."
        ) from None
    with open(os.path.join(path, PREPROCESSOR_FILE), "w", encoding="utf-8") as file:
        json.dump(keras.saving.serialize_keras_object(preprocessor), file)
    preprocessor.tokenizer.save_assets(path)
    description = {
        "format": ARTIFACT_FORMAT, "version": ARTIFACT_VERSION,
        "label_names": [str(name) for name in label_names],
        "tokens_per_chunk": tokens_per_chunk,
        "quantization": "dynamic-range int8 (tf.lite.Optimize.DEFAULT)",
        "runtime": RUNTIME_PACKAGE,
    }
    with open(os.path.join(path, DESCRIPTION_FILE), "w", encoding="utf-8") as file:
        json.dump(description, file, indent=2)
    return path


def is_int8_artifact(path):
    """Whether `path` is a directory written by `export_int8`."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    return isinstance(path, str) and os.path.isfile(os.path.join(path, DESCRIPTION_FILE))


def check_runtime():
    """Raise a one-line `ImportError` naming the package unless the LiteRT
    runtime that serves the int8 model is installed."""
    _runtime_interpreter()


def _runtime_interpreter():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:
        raise ImportError(f"Serving the int8 model needs the LiteRT runtime: {INSTALL_HINT}.") \
            from error
    return Interpreter


def available_cores():
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Int8Classifier:
    """Raw texts → probabilities and labels, from a directory of `export_int8`.

    Called like `kerasbert.prediction.Classifier` (which loads this class
    for such a directory): `probabilities, labels = classifier(texts)`.
    A batch is tokenized at once, sorted by length (longest first) and run
    in chunks of at most `tokens_per_chunk` word pieces, each padded to its
    own longest text; outputs come back in input order.

    Args:
        path: str. A directory written by `kerasbert.export_int8`.
        num_threads: int or None. CPU threads of the runtime; None: the
            cores this process may use.

    Examples:
    ```python
    import tempfile
    model = kerasbert.LayerSelectedClassifier.from_preset(
        "tiny", label_names=["neg", "pos"], sequence_length=16)
    path = kerasbert.export_int8(model, model.preprocessor, tempfile.mkdtemp(), ["neg", "pos"])
    probabilities, labels = kerasbert.Int8Classifier(path)(["a good film", "dull"])
    probabilities.shape  # (2, 2)
    ```
    """

    def __init__(self, path, num_threads=None):
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not is_int8_artifact(path):
            raise ValueError(f"No int8 classifier at {path!r} (no {DESCRIPTION_FILE}; "
                             "kerasbert.export_int8 writes it last).")
        with open(os.path.join(path, DESCRIPTION_FILE), encoding="utf-8") as file:
            description = json.load(file)
        if description.get("format") != ARTIFACT_FORMAT or (
                description.get("version") != ARTIFACT_VERSION):
            raise ValueError(
                f"{os.path.join(path, DESCRIPTION_FILE)} describes "
                f"{description.get('format')!r} version {description.get('version')!r}; this "
                f"kerasbert reads {ARTIFACT_FORMAT!r} version {ARTIFACT_VERSION}: export again."
            )
        interpreter_class = _runtime_interpreter()
        self.label_names = list(description["label_names"])
        self.tokens_per_chunk = int(description["tokens_per_chunk"])
        with open(os.path.join(path, PREPROCESSOR_FILE), encoding="utf-8") as file:
            self.preprocessor = keras.saving.deserialize_keras_object(json.load(file))
        self.preprocessor.tokenizer.load_assets(path)
        model_path = os.path.join(path, MODEL_FILE)
        try:
            self._interpreter = interpreter_class(
                model_path=model_path, num_threads=num_threads or available_cores())
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"{model_path} is not a readable LiteRT model "
                             f"({str(error).splitlines()[0]}); export it again.") from None
        self._runner = self._interpreter.get_signature_runner()
        self._input_dtypes = {name: detail["dtype"]
                              for name, detail in self._runner.get_input_details().items()}
        self._tokenize = tf.function(
            lambda texts: self.preprocessor(texts),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )

    def logits(self, texts):
        """Float32 logits `(batch, classes)` of a list of strings, in input order."""
        if isinstance(texts, (str, bytes)):
            raise TypeError(f"Classify a list of strings, not one {type(texts).__name__}.")
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, (str, bytes)):
                raise TypeError(f"Texts must be strings; item {index} is "
                                f"{type(text).__name__} {str(text)[:60]!r}.")
        logits = np.zeros((len(texts), len(self.label_names)), np.float32)
        if not texts:
            return logits
        features = {name: value.numpy()
                    for name, value in self._tokenize(tf.constant(texts)).items()}
        mask = features["padding_mask"].astype(np.int64)
        # (texts, sequences): one sequence per text, or a document's segments.
        lengths = mask.reshape(len(texts), -1, mask.shape[-1]).sum(-1)
        longest = lengths.max(-1)
        order = np.argsort(-longest, kind="stable")
        start = 0
        while start < len(order):
            padded = max(int(longest[order[start]]), 2)
            rows = max(1, self.tokens_per_chunk // (padded * lengths.shape[1]))
            chunk = order[start:start + rows]
            inputs = {name: np.ascontiguousarray(value[chunk, ..., :padded],
                                                 dtype=self._input_dtypes[name])
                      for name, value in features.items()}
            logits[chunk] = next(iter(self._runner(**inputs).values()))
            start += rows
        return logits

    def __call__(self, texts):
        """Probabilities `(batch, classes)` and the most probable label names."""
        logits = self.logits(texts)
        shifted = np.exp(logits - logits.max(-1, keepdims=True))
        probabilities = shifted / shifted.sum(-1, keepdims=True)
        labels = np.array(self.label_names, dtype=object)[probabilities.argmax(-1)] \
            if len(logits) else np.array([], dtype=object)
        return probabilities, labels
