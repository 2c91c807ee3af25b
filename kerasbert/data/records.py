"""Reading JSONL, CSV and TSV records line by line, with errors that name
`file:line`: the one reader behind labeled datasets, corpora and prediction."""

import csv
import json
import os

from kerasbert.text.raw_texts import lone_surrogate

# File extension → record format.
FILE_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}


def record_format(path):
    """The record format of `path` by its extension, or None."""
    return FILE_FORMATS.get(os.path.splitext(path)[1].lower())


def decoded_lines(binary_file, name):
    """Yield `(line_number, line)` from a binary file, failing on invalid
    UTF-8 with the line named."""
    for number, raw in enumerate(binary_file, start=1):
        try:
            # A byte-order mark (spreadsheet exports) is not part of line 1.
            yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{name}:{number}: invalid UTF-8 at byte {error.start} of the line "
                f"({raw[max(0, error.start - 10):error.start + 10]!r}). Re-encode it as UTF-8."
            ) from None


def parse_records(lines, fmt, name):
    """Yield `(line_number, dict)` from decoded `lines` of format `fmt`
    (`"jsonl"`, `"csv"` or `"tsv"`); blank lines are skipped. Streams:
    nothing but the current record is held.

    One record per line in every format. CSV is read with strict quoting: a
    field that opens a quote must close it on the same line (a malformed
    quote is an error naming `file:line`, never a merge of the following
    records). TSV fields are split at tabs and quotes in them are kept as
    they are (`"hi"` stays `"hi"`), as in the GLUE TSV files."""
    if fmt == "jsonl":
        for number, line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line, object_pairs_hook=_checked_object)
            except json.JSONDecodeError as error:
                raise ValueError(f"{name}:{number}: not valid JSON ({error}).") from None
            except _RecordError as error:
                raise ValueError(f"{name}:{number}: {error}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{name}:{number}: expected a JSON object, got {line[:80]!r}.")
            yield number, record
        return
    header = None
    for number, row in delimited_rows(lines, fmt, name):
        if header is None:
            repeated = sorted({field for field in row if row.count(field) > 1})
            if repeated:
                raise ValueError(f"{name}:{number}: the header names {repeated} more than "
                                 "once; name each column once.")
            header = row
            continue
        if len(row) != len(header):
            raise ValueError(
                f"{name}:{number}: the row has {len(row)} fields; the header has "
                f"{len(header)}. "
                + ("Quote fields that hold the delimiter." if fmt == "csv" else
                   "TSV fields cannot hold a tab (quotes are kept as written); write it as \\t.")
            )
        yield number, dict(zip(header, row))


class _RecordError(ValueError):
    """A JSON object that parses but cannot be read as one record."""


def _checked_object(pairs):
    # JSON allows a key twice and Python keeps the last value: a record that
    # says two things is refused instead.
    record = {}
    for key, value in pairs:
        if key in record:
            raise _RecordError(f"the key {key!r} appears twice in one record; keep one.")
        for text, what in ((key, "a key"), (value, f"field {key!r}")):
            problem = isinstance(text, str) and lone_surrogate(text)
            if problem:
                raise _RecordError(f"{what} holds {problem}; fix its \\u escape.")
        record[key] = value
    return record


def delimited_rows(lines, fmt, name):
    """Yield `(line_number, fields)` of each non-blank line of decoded
    `lines` of a `"csv"` or `"tsv"` file, read as `parse_records` does."""
    for number, line in lines:
        row = _delimited_row(line.rstrip("\r\n"), fmt, f"{name}:{number}")
        if row is not None:
            yield number, row


def _delimited_row(text, fmt, where):
    # One record per line. CSV: quoted fields may hold commas and doubled
    # quotes, and a quote must close on its line, so an unclosed quote is
    # an error here instead of swallowing the records after it. TSV: quotes
    # are ordinary characters (fields cannot hold tabs or line breaks).
    if not text.strip():
        return None
    if fmt == "tsv":
        return text.split("\t")
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error as error:
        raise ValueError(
            f"{where}: malformed CSV quoting ({error}): a quoted field must close on its own "
            'line, and a quote inside it is written "". Line breaks inside a text are '
            "written as \\n (one record per line)."
        ) from None


def read_records(path):
    """Yield `(line_number, dict)` from a JSONL, CSV or TSV file."""
    fmt = record_format(path)
    if fmt is None:
        raise ValueError(f"Unknown file type of {path!r}; expected one of {sorted(FILE_FORMATS)}.")
    with open(path, "rb") as file:
        yield from parse_records(decoded_lines(file, path), fmt, path)


def type_name(value):
    """A JSON-minded name of `value`'s type, for error messages."""
    return "null" if value is None else type(value).__name__


def joined_text(record, text_fields, where, also_required=(), hint=""):
    """The record's `text_fields`, each stripped, joined by a space; a
    missing field (of those and `also_required`) or a non-string text fails
    naming `where`, then `hint`."""
    missing = [f for f in (*text_fields, *also_required) if f not in record]
    if missing:
        raise ValueError(
            f"{where}: missing field(s) {missing}; the record has "
            f"{sorted(str(k) for k in record)}.{hint}"
        )
    for field in text_fields:
        if not isinstance(record[field], str):
            raise ValueError(
                f"{where}: field {field!r} must hold a string; it holds "
                f"{type_name(record[field])} {str(record[field])[:60]!r}."
            )
    return " ".join(record[f].strip() for f in text_fields)
