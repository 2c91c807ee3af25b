"""The one record reader: streaming JSONL/CSV/TSV with errors naming file:line."""

import pytest

from kerasbert.data.records import read_records


def test_csv_with_a_byte_order_mark_quotes_and_commas(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes('\ufefftext,label\n"one, ""two""",x\n\nplain,y\n'.encode("utf-8"))
    assert list(read_records(str(path))) == [
        (2, {"text": 'one, "two"', "label": "x"}), (4, {"text": "plain", "label": "y"})]


@pytest.mark.parametrize("line", ['"he said "hi" to me,x', '"unclosed,x', '"two', 'a"b"c,"x'])
def test_a_malformed_csv_quote_is_an_error_naming_the_line_never_a_merge(tmp_path, line):
    path = tmp_path / "a.csv"
    rows = [f"row {i},y" for i in range(5)]
    path.write_text("text,label\n" + "\n".join(rows[:2] + [line] + rows[2:]) + "\n")
    with pytest.raises(ValueError, match=r"a.csv:4: malformed CSV quoting") as error:
        list(read_records(str(path)))
    assert "\n" not in str(error.value)


def test_tsv_quotes_are_read_literally(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_text('text\tlabel\n"he said "hi" to me\tx\n"open\ty\nplain\tz\n')
    assert [record for _, record in read_records(str(path))] == [
        {"text": '"he said "hi" to me', "label": "x"}, {"text": '"open', "label": "y"},
        {"text": "plain", "label": "z"}]


@pytest.mark.parametrize("row", ["a,b,c", "a"])
def test_a_csv_row_with_more_or_fewer_fields_than_the_header_is_named(tmp_path, row):
    path = tmp_path / "a.csv"
    path.write_text(f"text,label\nfine,x\n{row}\n")
    with pytest.raises(ValueError, match=rf"a.csv:3: the row has {len(row.split(','))} fields; "
                                         r"the header has 2"):
        list(read_records(str(path)))


@pytest.mark.parametrize("line, message", [
    ('{"text": "a", "text": "b", "label": "x"}', r"a.jsonl:2: the key 'text' appears twice"),
    ('{"text": "ok \\ud800", "label": "x"}',
     r"a.jsonl:2: field 'text' holds a lone surrogate '\\ud800' at character 3"),
    ('{"text": "ok", "label": {"\\udc00": 1}}', r"a.jsonl:2: a key holds a lone surrogate"),
])
def test_a_jsonl_record_that_says_two_things_or_holds_no_unicode_is_named(tmp_path, line,
                                                                         message):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "fine", "label": "x"}\n' + line + "\n")
    with pytest.raises(ValueError, match=message) as error:
        list(read_records(str(path)))
    assert "\n" not in str(error.value)
    # A pair of surrogates is one character, and valid.
    path.write_text('{"text": "\\ud83d\\ude00", "label": "x"}\n')
    assert list(read_records(str(path))) == [(1, {"text": "\U0001F600", "label": "x"})]


@pytest.mark.parametrize("suffix, header", [(".csv", "text,label,text"),
                                            (".tsv", "text\tlabel\ttext")])
def test_a_header_naming_a_column_twice_is_refused(tmp_path, suffix, header):
    path = tmp_path / f"a{suffix}"
    path.write_text(header + "\n" + header.replace("text", "x").replace("label", "y") + "\n")
    with pytest.raises(ValueError, match=rf"a{suffix}:1: the header names \['text'\] more than"):
        list(read_records(str(path)))
