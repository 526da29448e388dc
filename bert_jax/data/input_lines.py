"""Prediction input lines as records: JSON objects, or tab-separated fields named by columns."""

import json


def records(lines: list[str], columns: list[str | None]) -> list[dict]:
    """JSON objects as they are; TSV lines as {column: field}, a header line naming them read."""
    if lines[0].lstrip().startswith("{"):
        return [json.loads(line) for line in lines]
    names = [c for c in columns if c is not None]
    rows = [line.split("\t") for line in lines]
    if names[0] in rows[0]:  # a header, such as GLUE's "sentence\tlabel"
        header, rows = rows[0], rows[1:]
        return [dict(zip(header, row, strict=False)) for row in rows]
    if names[0].isdigit():  # header-less GLUE files (CoLA) name columns by index
        return [{str(i): field for i, field in enumerate(row)} for row in rows]
    return [dict(zip(names, row, strict=False)) for row in rows]
