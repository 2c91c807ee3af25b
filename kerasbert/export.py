"""Export a classifier as a SavedModel that takes raw strings."""

import tensorflow as tf

from kerasbert.text import packing


# Word pieces (rows × padded length) the serving model runs at once on a
# CPU; bounds the attention scores a batch of long texts holds
# (rows × heads × length²). Accelerators take the whole batch at once.
CPU_TOKENS_PER_CHUNK = 2048


def default_tokens_per_chunk():
    """`CPU_TOKENS_PER_CHUNK` on a machine without GPU or TPU, else no limit."""
    accelerators = tf.config.list_physical_devices("GPU") + tf.config.list_physical_devices("TPU")
    return None if accelerators else CPU_TOKENS_PER_CHUNK


class ServingModule(tf.Module):
    """Raw strings → probabilities and labels; holds the model and the
    preprocessor so that both are saved.

    A batch is tokenized at once, sorted by length (longest first) and run
    through the model in chunks of at most `tokens_per_chunk` word pieces
    (rows × the chunk's padded length, at least one row), one chunk after
    the other, each padded only to its own longest text. Outputs come back
    in input order. On a CPU this keeps a batch of long documents' attention
    scores small instead of a batch-sized tensor per layer, and spares short
    texts the padding of long ones; a batch of short texts is still one
    chunk. `"auto"` chunks on a machine without GPU or TPU (decided when the
    module is built, i.e. at export) and takes whole batches otherwise;
    `None` never chunks.
    """

    def __init__(self, model, preprocessor, label_names, tokens_per_chunk="auto"):
        super().__init__()
        if tokens_per_chunk == "auto":
            tokens_per_chunk = default_tokens_per_chunk()
        if tokens_per_chunk is None:
            tokens_per_chunk = 2**31 - 1
        if isinstance(tokens_per_chunk, bool) or not isinstance(tokens_per_chunk, int) or (
                tokens_per_chunk < 1):
            raise ValueError(
                "`tokens_per_chunk` must be a positive integer, None or 'auto'. "
                f"Received: {tokens_per_chunk!r}"
            )
        # The model is called, not saved as an object: saved whole, it would
        # bring its optimizer's slots (twice the weights under Adam) into the
        # SavedModel. Its variables are tracked on their own, so the saved
        # graph holds the weights and nothing else of training.
        self._logits = lambda features: model(features, training=False)
        self.model_variables = list(model.variables)
        self.preprocessor = preprocessor
        self.label_names = tf.constant(list(label_names))
        self.tokens_per_chunk = tokens_per_chunk

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def serve(self, texts):
        # A signature call feeds tensors of any shape through (only a direct
        # `serve` call checks the spec): refuse anything but a vector at run
        # time, or a matrix would be read as its first column.
        texts = tf.ensure_shape(texts, [None], name="texts_must_be_a_vector_of_strings")
        features = self.preprocessor(texts)
        count = tf.shape(texts)[0]
        mask = tf.cast(features["padding_mask"], tf.int32)
        # (texts, sequences, length): one sequence per text, or a segmented
        # document's segments. A chunk is padded to its longest sequence.
        sequences = tf.reduce_sum(tf.reshape(mask, [count, -1, tf.shape(mask)[-1]]), axis=-1)
        longest = tf.reduce_max(sequences, axis=-1)
        order = tf.argsort(longest, direction="DESCENDING", stable=True)
        features = {name: tf.gather(value, order) for name, value in features.items()}
        # Sorted, a chunk's first text has its longest sequence.
        padded_size = tf.shape(sequences)[1] * tf.gather(longest, order)
        num_classes = self.label_names.shape[0]

        def chunk(start, index, outputs):
            rows = tf.maximum(1, self.tokens_per_chunk // tf.maximum(padded_size[start], 1))
            end = tf.minimum(start + rows, count)
            part = packing.trim_padding({name: value[start:end] for name, value in features.items()})
            logits = self._logits(part)
            return end, index + 1, outputs.write(index, tf.cast(logits, tf.float32))

        _, _, outputs = tf.while_loop(
            lambda start, index, outputs: start < count, chunk,
            [tf.constant(0), tf.constant(0),
             tf.TensorArray(tf.float32, size=0, dynamic_size=True, infer_shape=False,
                            element_shape=tf.TensorShape([None, num_classes]))],
            parallel_iterations=1,  # one chunk at a time: that is the memory bound
        )
        logits = tf.gather(outputs.concat(), tf.argsort(order))  # back to input order
        probabilities = tf.nn.softmax(logits, axis=-1)
        return {
            "probabilities": probabilities,
            "label": tf.gather(self.label_names, tf.argmax(probabilities, axis=-1)),
            "label_names": tf.tile(self.label_names[tf.newaxis], [count, 1]),
        }


def export_serving(model, preprocessor, path, label_names, tokens_per_chunk="auto"):
    """Write a SavedModel whose serving signature classifies raw strings.

    The signature `serving_default` (also callable as `.serve`) takes
    `texts`, a `tf.string` tensor of shape `(batch,)`, tokenizes and packs
    them inside the graph (each batch padded to its longest text), and
    returns:
    - `probabilities`: float32 `(batch, num_classes)`, softmax over classes;
    - `label`: string `(batch,)`, the most probable label name;
    - `label_names`: string `(batch, num_classes)`, the class of each column.

    Loading needs TensorFlow and `tensorflow_text` (for the tokenizer's ops),
    not kerasbert or Keras:
    `import tensorflow_text; tf.saved_model.load(path).serve(texts)`.

    Args:
        model: a Keras model taking the preprocessor's outputs and returning
            logits, e.g. `kerasbert.LayerSelectedClassifier`.
        preprocessor: `kerasbert.ClassifierPreprocessor`.
        path: str. The output directory.
        label_names: list of str. The class names, in logit order.
        tokens_per_chunk: int, None or `"auto"`. Word pieces the model runs
            at once: a batch is sorted by length and classified in chunks of
            at most this many (rows × the chunk's padded length, at least one
            text), each padded to its own longest text. `"auto"`: 2048 when
            the exporting machine has no GPU or TPU, else whole batches;
            `None`: whole batches. Results do not depend on it beyond float
            rounding.

    Examples:
    ```python
    import tempfile
    backbone, tokenizer = kerasbert.load_backbone("tiny")
    preprocessor = kerasbert.ClassifierPreprocessor(tokenizer, sequence_length=16)
    model = kerasbert.LayerSelectedClassifier(backbone, num_classes=2)
    path = tempfile.mkdtemp()
    kerasbert.export_serving(model, preprocessor, path, ["neg", "pos"])
    ```
    """
    output_units = model.output.shape[-1]
    if len(label_names) != output_units:
        raise ValueError(
            f"The model has {output_units} outputs but {len(label_names)} label "
            f"names were given: {list(label_names)}."
        )
    module = ServingModule(model, preprocessor, label_names, tokens_per_chunk)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    return path
