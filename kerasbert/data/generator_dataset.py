"""`tf.data.Dataset.from_generator` whose Python errors surface as themselves."""

import contextlib

import tensorflow as tf

# What generators of `generator_dataset` raised, in order; tf.data runs them
# on its own threads, so the exception itself cannot travel with the error.
_raised = []


def generator_dataset(generate, output_signature):
    """`tf.data.Dataset.from_generator`, remembering what `generate` raises.

    TensorFlow turns an exception inside a generator into an
    `InvalidArgumentError` whose message carries the Python traceback;
    within `generator_errors_raised()` the generator's own exception is
    raised instead (a one-line `ValueError` naming the file and line stays
    one line).

    Args:
        generate: a function of no arguments returning a generator.
        output_signature: as for `tf.data.Dataset.from_generator`.

    Example:
    ```python
    def generate():
        yield "a"
        raise ValueError("corpus.txt:2: invalid UTF-8")

    dataset = kerasbert.data.generator_dataset.generator_dataset(
        generate, tf.TensorSpec([], tf.string))
    try:
        with kerasbert.data.generator_dataset.generator_errors_raised():
            list(dataset)
    except ValueError as error:
        print(error)  # corpus.txt:2: invalid UTF-8
    ```
    """

    def remembering():
        try:
            yield from generate()
        except Exception as error:
            _raised.append(error)
            raise

    return tf.data.Dataset.from_generator(remembering, output_signature=output_signature)


@contextlib.contextmanager
def generator_errors_raised():
    """Within, a TensorFlow error that a `generator_dataset`'s generator
    caused is replaced by the generator's own exception (TensorFlow's error
    is kept as its `__cause__`)."""
    del _raised[:]
    try:
        yield
    except tf.errors.OpError as error:
        if not _raised:
            raise
        raise _raised[0] from error
