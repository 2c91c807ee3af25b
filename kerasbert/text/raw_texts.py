"""Raw texts as every entry point takes them: a list of valid Unicode strings.

One check behind `fit`/`evaluate`/`predict`, `prediction.Classifier` (fp32
and int8) and the file readers, so each refuses the same inputs with the
same one-line error naming the item.
"""

import numpy as np


def lone_surrogate(text):
    """A one-line description of the first lone surrogate in the str `text`
    (half of a UTF-16 pair, as a JSON `\\ud800` escape decodes to), which
    is not valid Unicode and cannot be encoded as UTF-8; None if it has none."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return (f"a lone surrogate {text[error.start]!r} at character {error.start} (half of a "
                "UTF-16 pair, not valid Unicode)")
    return None


def invalid_utf8(data):
    """A one-line description of the first invalid UTF-8 in the bytes
    `data`, or None if it decodes."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        near = data[max(0, error.start - 10):error.start + 10]
        return f"invalid UTF-8 at byte {error.start} ({near!r})"
    return None


def checked_texts(texts):
    """`texts` as a list of UTF-8 `bytes`, or a one-line error naming the
    first item that is not a valid text.

    A bare string is refused rather than read as a sequence of characters
    (one text is `[text]`); so are non-string items, strings holding a
    lone surrogate and bytes that are not UTF-8.

    Args:
        texts: an iterable of str or bytes (a list, a tuple, a NumPy array of
            strings, a generator).

    Returns:
        A list of UTF-8 bytes, in order (what a `tf.string` tensor holds).

    Example:
    ```python
    from kerasbert.text.raw_texts import checked_texts
    checked_texts(("who was galileo ?", b"where is the nile ?"))
    # [b'who was galileo ?', b'where is the nile ?']
    ```
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"Texts must be a list of texts, not one {type(texts).__name__}: "
                        f"write [{texts[:40]!r}] for one text.")
    if isinstance(texts, (dict, set, frozenset)):
        raise TypeError(f"Texts must be a list of strings, not a {type(texts).__name__} (its "
                        "order, or which of its parts are the texts, is not defined).")
    if isinstance(texts, np.ndarray) and texts.ndim != 1:
        raise TypeError(f"Texts must be a 1-D array of strings; this one has shape "
                        f"{texts.shape}.")
    try:
        items = list(texts)
    except TypeError:
        raise TypeError(f"Texts must be a list of strings, not {type(texts).__name__}.") from None
    encoded = []
    for index, text in enumerate(items):
        if not isinstance(text, (str, bytes)):  # np.str_ and np.bytes_ are
            what = "None" if text is None else f"{type(text).__name__} {repr(text)[:60]}"
            raise TypeError(f"Texts must be strings; item {index} is {what}.")
        if isinstance(text, bytes):
            problem = invalid_utf8(text)
            if problem is None:
                encoded.append(bytes(text))
                continue
        else:
            try:
                encoded.append(text.encode("utf-8"))  # once: TensorFlow would again
                continue
            except UnicodeEncodeError:
                problem = lone_surrogate(text)
        raise ValueError(f"Text item {index} holds {problem}.")
    return encoded
