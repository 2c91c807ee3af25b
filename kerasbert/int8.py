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

import hashlib
import json
import os
import queue
import re
import threading

import keras
import numpy as np
import tensorflow as tf

from kerasbert.export import CPU_TOKENS_PER_CHUNK
from kerasbert.text.raw_texts import checked_texts
from kerasbert.utils.arguments import positive_int
from kerasbert.utils.files import file_digest
from kerasbert.utils.files import read_json_object

MODEL_FILE = "model.tflite"
PREPROCESSOR_FILE = "preprocessor.json"
DESCRIPTION_FILE = "int8.json"
ARTIFACT_FORMAT = "kerasbert-int8"
# 2: `int8.json` holds the SHA-256 of every other file (version 1, read
# without that check, did not).
ARTIFACT_VERSION = 2
READABLE_VERSIONS = (1, 2)
RUNTIME_PACKAGE = "ai-edge-litert"
# Interpreters an `Int8Classifier` runs at once: one call computes while
# another tokenizes and sorts (on 2 cores, 2 × 2 threads served 1 and 4
# client threads alike; see the README).
DEFAULT_CONCURRENT_CALLS = 2
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
    label_names = [str(name) for name in label_names]
    if len(set(label_names)) != len(label_names):
        raise ValueError(f"Label names must be distinct. Received: {label_names}")
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
        "label_names": label_names,
        "files": {name: file_digest(os.path.join(path, name))
                  for name in sorted(os.listdir(path)) if name != DESCRIPTION_FILE},
        "tokens_per_chunk": tokens_per_chunk,
        "quantization": "dynamic-range int8 (tf.lite.Optimize.DEFAULT)",
        "runtime": RUNTIME_PACKAGE,
    }
    with open(os.path.join(path, DESCRIPTION_FILE), "w", encoding="utf-8") as file:
        json.dump(description, file, indent=2)
    return path


def read_description(path):
    """`int8.json` of the artifact at `path`, checked: a one-line
    `ValueError` naming the file for anything this version cannot serve."""
    file_path = os.path.join(path, DESCRIPTION_FILE)
    description = read_json_object(file_path, "export again")
    version = description.get("version")
    if description.get("format") != ARTIFACT_FORMAT or isinstance(version, bool) or (
            not isinstance(version, int) or version not in READABLE_VERSIONS):
        raise ValueError(
            f"{file_path} describes {description.get('format')!r} version "
            f"{version!r}; this kerasbert reads {ARTIFACT_FORMAT!r} "
            f"versions {', '.join(map(str, READABLE_VERSIONS))}: export again."
        )
    names = description.get("label_names")
    if (not isinstance(names, list) or not names
            or not all(isinstance(name, str) and name for name in names)):
        raise ValueError(f"{file_path}: `label_names` must be a non-empty list of non-empty "
                         f"strings; it holds {names!r}.")
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"{file_path}: `label_names` names {repeated} more than once.")
    chunk = description.get("tokens_per_chunk")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"{file_path}: `tokens_per_chunk` must be a positive integer; it "
                         f"holds {chunk!r}.")
    files = {}
    if version >= 2:
        files = description.get("files")
        if not (isinstance(files, dict) and MODEL_FILE in files and PREPROCESSOR_FILE in files):
            raise ValueError(f"{file_path}: `files` must give the SHA-256 of {MODEL_FILE} and "
                             f"{PREPROCESSOR_FILE}; export again.")
        # Every file of the directory is described: none added or left out.
        unlisted = sorted(set(os.listdir(path)) - set(files) - {DESCRIPTION_FILE})
        if unlisted:
            raise ValueError(f"{os.path.join(path, unlisted[0])} is not among the files "
                             f"{DESCRIPTION_FILE} describes; export again.")
    for name, digest in files.items():
        file = os.path.join(path, name)
        if not isinstance(name, str) or os.path.basename(name) != name:
            raise ValueError(f"{file_path}: `files` names {name!r}, not a file of the "
                             "artifact's directory; export again.")
        if not os.path.isfile(file):
            raise ValueError(f"{file} is missing: the int8 artifact at {path} is incomplete; "
                             "export again.")
        if name != MODEL_FILE and file_digest(file) != digest:  # the model: as it is read
            raise ValueError(f"{file} changed since export (its SHA-256 differs from "
                             f"{DESCRIPTION_FILE}'s); export again.")
    return description


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

    Safe to call from many threads at once: a LiteRT interpreter is not, so
    each call borrows one from a pool (at most `max_concurrent_calls` run
    at once; more calls wait for a free one). The files are checked against
    the SHA-256 digests in `int8.json` when loading; a damaged or edited
    artifact is refused in one line.

    Args:
        path: str. A directory written by `kerasbert.export_int8`.
        num_threads: int or None. CPU threads of each interpreter; None: the
            cores this process may use.
        max_concurrent_calls: int or None. Interpreters in the pool: calls
            that run at once (each holds its own activations; more calls
            wait). None: 2. On a many-core server, pool size × `num_threads`
            should not exceed the cores.

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

    def __init__(self, path, num_threads=None, max_concurrent_calls=None):
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not is_int8_artifact(path):
            raise ValueError(f"No int8 classifier at {path!r} (no {DESCRIPTION_FILE}; "
                             "kerasbert.export_int8 writes it last).")
        positive_int("num_threads", num_threads, allow_none=True)
        positive_int("max_concurrent_calls", max_concurrent_calls, allow_none=True)
        description = read_description(path)
        self._interpreter_class = _runtime_interpreter()
        self.label_names = list(description["label_names"])
        self.tokens_per_chunk = int(description["tokens_per_chunk"])
        preprocessor_path = os.path.join(path, PREPROCESSOR_FILE)
        try:
            with open(preprocessor_path, encoding="utf-8") as file:
                self.preprocessor = keras.saving.deserialize_keras_object(json.load(file))
            self.preprocessor.tokenizer.load_assets(path)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
            raise ValueError(f"{preprocessor_path} does not load "
                             f"({str(error).splitlines()[0][:200]}); export again.") from None
        model_path = os.path.join(path, MODEL_FILE)
        with open(model_path, "rb") as file:
            self._model_content = file.read()  # checked and loaded from the same bytes
        expected = description.get("files", {}).get(MODEL_FILE)
        if expected and hashlib.sha256(self._model_content).hexdigest() != expected:
            raise ValueError(f"{model_path} changed since export (its SHA-256 differs from "
                             f"{DESCRIPTION_FILE}'s); export again.")
        self._model_path = model_path
        self._num_threads = num_threads or available_cores()
        self._idle = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(max_concurrent_calls or DEFAULT_CONCURRENT_CALLS)
        runner = self._new_runner()
        self._input_dtypes = {name: detail["dtype"]
                              for name, detail in runner.get_input_details().items()}
        (output,) = runner.get_output_details().values()
        if int(output["shape_signature"][-1]) != len(self.label_names):
            raise ValueError(
                f"{os.path.join(path, DESCRIPTION_FILE)} names {len(self.label_names)} labels "
                f"but {model_path} has {int(output['shape_signature'][-1])} outputs; export "
                "again."
            )
        self._idle.put(runner)
        # Traced once here: concurrent calls then share one concrete graph.
        self._tokenize = tf.function(
            lambda texts: self.preprocessor(texts),
            input_signature=[tf.TensorSpec([None], tf.string)],
        ).get_concrete_function()

    def _new_runner(self):
        try:
            interpreter = self._interpreter_class(model_content=self._model_content,
                                                  num_threads=self._num_threads)
            return interpreter.get_signature_runner()
        except (ValueError, RuntimeError) as error:
            raise ValueError(f"{self._model_path} is not a readable LiteRT model "
                             f"({str(error).splitlines()[0]}); export it again.") from None

    def logits(self, texts):
        """Float32 logits `(batch, classes)` of a list of strings, in input order."""
        texts = checked_texts(texts)
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
        with self._slots:
            try:
                runner = self._idle.get_nowait()
            except queue.Empty:
                runner = self._new_runner()
            try:
                start = 0
                while start < len(order):
                    padded = max(int(longest[order[start]]), 2)
                    rows = max(1, self.tokens_per_chunk // (padded * lengths.shape[1]))
                    chunk = order[start:start + rows]
                    inputs = {name: np.ascontiguousarray(value[chunk, ..., :padded],
                                                         dtype=self._input_dtypes[name])
                              for name, value in features.items()}
                    logits[chunk] = next(iter(runner(**inputs).values()))
                    start += rows
            finally:
                self._idle.put(runner)
        return logits

    def __call__(self, texts):
        """Probabilities `(batch, classes)` and the most probable label names.

        Safe to call from many threads at once. `texts` is a list (or any
        iterable) of strings; a bare string is refused, as one text is
        `[text]`."""
        logits = self.logits(texts)
        shifted = np.exp(logits - logits.max(-1, keepdims=True))
        probabilities = shifted / shifted.sum(-1, keepdims=True)
        labels = np.array(self.label_names, dtype=object)[probabilities.argmax(-1)] \
            if len(logits) else np.array([], dtype=object)
        return probabilities, labels
