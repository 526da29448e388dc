"""Prediction input lines as records: JSON objects, or tab-separated fields named by columns.

A line that cannot be read raises `BadLine` with its index in the given lines, so `predict` can
name its line number and still write the predictions of the lines before it.
"""

import json

from bert_jax.errors import UserError


class BadLine(UserError):
    """An input line that cannot be predicted: `index` into the lines given, and why."""

    def __init__(self, index: int, reason: str):
        super().__init__(reason)
        self.index, self.reason = index, reason


def parse_json(index: int, line: str) -> dict:
    """The JSON object on a line, or BadLine saying what is wrong with it."""
    try:
        record = json.loads(line)
    except ValueError as error:
        raise BadLine(index, f"is not valid JSON ({error})") from None
    if not isinstance(record, dict):
        raise BadLine(index, f"holds a JSON {type(record).__name__}, not an object")
    return record


def records(lines: list[str], columns: list[str | None]) -> list[tuple[int, dict]]:
    """(index in `lines`, record) per input: JSON objects as they are; TSV lines as
    {column: field}, a first line naming the columns read as a header (it has no record)."""
    if lines[0].lstrip().startswith("{"):
        return [(index, parse_json(index, line)) for index, line in enumerate(lines)]
    names = [c for c in columns if c is not None]
    rows = [line.split("\t") for line in lines]
    if names[0] in rows[0]:  # a header, such as GLUE's "sentence\tlabel"
        header = rows[0]
        return [(i, dict(zip(header, row, strict=False))) for i, row in enumerate(rows) if i]
    if names[0].isdigit():  # header-less GLUE files (CoLA) name columns by index
        return [(i, {str(k): field for k, field in enumerate(row)}) for i, row in enumerate(rows)]
    return [(i, dict(zip(names, row, strict=False))) for i, row in enumerate(rows)]


def text_field(index: int, record: dict, *keys: str) -> str:
    """The first of `keys` the record has, as text, or BadLine naming the field."""
    for key in keys:
        if key in record and record[key] is not None:
            return str(record[key])
    raise BadLine(index, f"has no {keys[0]!r} field")
