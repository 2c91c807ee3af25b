"""How much of a text collection a tokenizer's vocabulary covers."""

import unicodedata

import numpy as np
import tensorflow as tf


def unknown_piece_rate(tokenizer, texts, max_texts=200):
    """The fraction of word pieces of `texts` that the tokenizer maps to [UNK].

    A high rate means the backbone's vocabulary does not fit the text (an
    English vocabulary on Chinese text, say), and fine-tuning would see
    little but [UNK]. Only the first `max_texts` texts are read.

    Args:
        tokenizer: a keras-hub `BertTokenizer` (anything with
            `token_to_id` that maps a string tensor to token ids).
        texts: list of str.
        max_texts: int. How many texts to read at most.

    Returns:
        A float in [0, 1]; 0.0 for no word pieces at all.

    Example:
    ```python
    _, tokenizer = kerasbert.load_backbone("tiny")
    kerasbert.text.unknown_piece_rate(tokenizer, ["what city is it", "体育新闻"])  # 0.5: the 4 Chinese characters
    ```
    """
    sample = list(texts[:max_texts])
    if not sample:
        return 0.0
    pieces = tokenizer(tf.constant(sample))
    flat = np.concatenate([np.asarray(ids, np.int64).ravel() for ids in _rows(pieces)] or [[]])
    if flat.size == 0:
        return 0.0
    return float(np.mean(flat == tokenizer.token_to_id("[UNK]")))


def _rows(pieces):
    if isinstance(pieces, tf.RaggedTensor):
        return [row.numpy() for row in pieces]
    return list(pieces)


def texts_without_word_pieces(tokenizer, texts):
    """Indices of the texts that tokenize to no word piece at all.

    Such a text (whitespace, control or zero-width characters only) reaches
    the model as `[CLS] [SEP]`, like an empty one. Only texts without a
    letter or digit can qualify, so only those are tokenized.

    Args:
        tokenizer: a keras-hub `BertTokenizer`.
        texts: list of str.

    Returns:
        A list of int, in order.

    Example:
    ```python
    _, tokenizer = kerasbert.load_backbone("tiny")
    kerasbert.text.texts_without_word_pieces(tokenizer, ["a city", "\\u200b \\t", "?"])  # [1]
    ```
    """
    candidates = [i for i, text in enumerate(texts) if not any(c.isalnum() for c in text)]
    if not candidates:
        return []
    pieces = tokenizer(tf.constant([texts[i] for i in candidates]))
    return [i for i, row in zip(candidates, _rows(pieces)) if np.size(row) == 0]


def is_blank_text(text):
    """Whether BERT's text cleaning leaves nothing of `text`: it holds only
    whitespace, control and format characters (zero-width spaces and
    joiners, byte-order marks), which the tokenizer drops.

    The tokenizer-free test of `texts_without_word_pieces`, for streams
    read before any model is at hand (`kerasbert.prediction`).

    Example:
    ```python
    kerasbert.text.vocabulary_coverage.is_blank_text("\\u200b \\ufeff")  # True
    ```
    """
    return all(char.isspace() or unicodedata.category(char) in ("Cc", "Cf")
               or char == "\ufffd" for char in text)
