"""The one record reader: streaming JSONL/CSV/TSV with errors naming file:line."""

import pytest

from kerasbert.data.records import read_records


def test_csv_with_a_byte_order_mark_and_a_quoted_newline(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes('\ufefftext,label\n"two\nlines",x\nplain,y\n'.encode("utf-8"))
    assert list(read_records(str(path))) == [
        (3, {"text": "two\nlines", "label": "x"}), (4, {"text": "plain", "label": "y"})]


@pytest.mark.parametrize("row", ["a,b,c", "a"])
def test_a_csv_row_with_more_or_fewer_fields_than_the_header_is_named(tmp_path, row):
    path = tmp_path / "a.csv"
    path.write_text(f"text,label\nfine,x\n{row}\n")
    with pytest.raises(ValueError, match=rf"a.csv:3: the row has {len(row.split(','))} fields; "
                                         r"the header has 2"):
        list(read_records(str(path)))
