"""parse_import_file: campaigns to remember, read from a CSV or JSON list, with the rows it had to skip."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from experiture_mcp.models import campaign_id_from

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_NAME_LENGTH",
    "MAX_ROWS",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "ImportFileError",
    "ImportProblem",
    "ImportRow",
    "parse_import_file",
]

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_ROWS = 100_000
MAX_NAME_LENGTH = 500
MAX_TAGS = 20
MAX_TAG_LENGTH = 64

# Header spellings, compared case-insensitively without spaces, "_" and "-" (so "Campaign ID" and "campaign_id" match).
_ID_HEADERS = frozenset({"id", "campaignid", "campaignuuid", "uuid"})
_NAME_HEADERS = frozenset({"name", "campaignname"})
_TAG_HEADERS = frozenset({"tags", "tag"})
_DELIMITERS = (",", ";", "\t")
_TAG_SPLIT = re.compile(r"[|;,]")
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


class ImportFileError(ValueError):
    """The file as a whole cannot be imported; the message says why, for a person."""


@dataclass(frozen=True)
class ImportRow:
    """One campaign to remember, from line `line` of the file."""

    line: int
    campaign_id: str
    name: str | None
    tags: tuple[str, ...]


@dataclass(frozen=True)
class ImportProblem:
    """A row that was skipped, and why."""

    line: int
    message: str


def parse_import_file(path: Path) -> tuple[list[ImportRow], list[ImportProblem]]:
    """The good rows of a CSV or JSON import file, and the bad ones it skipped; ImportFileError if none can be read."""
    text = _read_text(path)
    if not text.strip():
        raise ImportFileError(f"{path} is empty: nothing to import.")
    if path.suffix.lower() == ".json" or text.lstrip()[0] in "[{":
        items = _json_items(path, text)
    else:
        items = _csv_items(path, text)
    return _collect(items)


# An item before validation: its line, its raw id (or None), its name, its tags, or the reason it is unusable.
_Item = tuple[int, str | None, str | None, tuple[str, ...], str | None]


def _read_text(path: Path) -> str:
    try:
        if not path.is_file():
            raise ImportFileError(f"{path} is not a file that can be read.")
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc.__class__.__name__}.") from None
    if len(data) > MAX_FILE_BYTES:
        raise ImportFileError(
            f"{path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; split it into smaller files."
        )
    if b"\x00" in data:
        raise ImportFileError(f"{path} holds NUL bytes: it is not a text file (save it as CSV or JSON).")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportFileError(f"{path} is not UTF-8 text (line {line}); save it as UTF-8 CSV or JSON.") from None


def _header_key(cell: str) -> str:
    return re.sub(r"[\s_\-]", "", cell).casefold()


def _split_tags(cell: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(tag.strip() for tag in _TAG_SPLIT.split(cell) if tag.strip()))


def _first_row(text: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), list[str]())
    except csv.Error:
        return []


def _csv_items(path: Path, text: str) -> list[_Item]:
    # The delimiter is the one whose first row holds an id column; with one column any of them does.
    header: list[str] = []
    delimiter = ","
    for candidate in _DELIMITERS:
        row = [_header_key(cell) for cell in _first_row(text, candidate)]
        if any(cell in _ID_HEADERS for cell in row) and len(row) > len(header):
            header, delimiter = row, candidate
    id_columns = [i for i, cell in enumerate(header) if cell in _ID_HEADERS]
    first = _first_row(text, ",")
    headerless = not id_columns and len(first) == 1 and campaign_id_from(first[0]) is not None
    if headerless:  # a plain list of ids or links, one a line
        header, id_columns = ["id"], [0]
    if not id_columns:
        shown = ", ".join(repr(cell[:40]) for cell in first[:8])
        raise ImportFileError(
            f"{path} has no id column: the first line must be a header such as id,name,tags (found {shown})."
        )
    if len(id_columns) > 1:
        raise ImportFileError(f"{path} has {len(id_columns)} id columns in its header; keep one.")
    id_col = id_columns[0]
    name_col = next((i for i, cell in enumerate(header) if cell in _NAME_HEADERS), None)
    tags_col = next((i for i, cell in enumerate(header) if cell in _TAG_HEADERS), None)

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    items: list[_Item] = []
    line = 1
    try:
        if not headerless:
            next(reader)
            line = reader.line_num + 1
        for row in reader:
            start, line = line, reader.line_num + 1  # a quoted field may span several physical lines
            if not any(cell.strip() for cell in row):
                continue
            if len(items) >= MAX_ROWS:
                raise ImportFileError(f"{path} has more than {MAX_ROWS:,} rows; split it into smaller files.")

            def cell(col: int | None, row: list[str] = row) -> str:
                return row[col] if col is not None and col < len(row) else ""

            name = cell(name_col).strip() or None
            items.append((start, cell(id_col).strip() or None, name, _split_tags(cell(tags_col)), None))
    except csv.Error as exc:
        raise ImportFileError(f"{path} line {line} is not valid CSV ({exc}); fix the quoting there.") from None
    return items


def _skip(text: str, pos: int) -> int:
    match = _JSON_SPACE.match(text, pos)
    return match.end() if match else pos


def _json_items(path: Path, text: str) -> list[_Item]:
    # The list is walked item by item (never evaluated) so that each item keeps the line it starts on.
    decoder = json.JSONDecoder()
    pos = _skip(text, 0)
    if text[pos : pos + 1] != "[":
        raise ImportFileError(
            f"{path} is not a JSON list: it must be [ ... ] of campaign ids or of objects with id and name."
        )
    items: list[_Item] = []
    pos = _skip(text, pos + 1)
    line, counted = 1, 0
    try:
        if text[pos : pos + 1] == "]":
            pos = _skip(text, pos + 1)
        else:
            while True:
                if len(items) >= MAX_ROWS:
                    raise ImportFileError(f"{path} has more than {MAX_ROWS:,} items; split it into smaller files.")
                line += text.count("\n", counted, pos)  # counted so far up to `counted`: linear, not quadratic
                counted = pos
                value, pos = decoder.raw_decode(text, pos)
                items.append(_json_item(line, value))
                pos = _skip(text, pos)
                separator = text[pos : pos + 1]
                if separator not in (",", "]"):
                    raise json.JSONDecodeError("Expecting ',' or ']' after an item", text, pos)
                pos = _skip(text, pos + 1)
                if separator == "]":
                    break
    except ImportFileError:
        raise
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}).") from None
    except (ValueError, RecursionError):  # a number too long to convert, or nesting too deep to follow
        line = text.count("\n", 0, pos) + 1
        raise ImportFileError(f"{path} is not valid JSON (line {line}: an item cannot be read).") from None
    if pos != len(text):
        line = text.count("\n", 0, pos) + 1
        raise ImportFileError(f"{path} has text after the end of the JSON list (line {line}).")
    if not items:
        raise ImportFileError(f"{path} is an empty list: nothing to import.")
    return items


def _json_item(line: int, value: object) -> _Item:
    if isinstance(value, str):
        return (line, value.strip() or None, None, (), None)
    if not isinstance(value, dict):
        return (line, None, None, (), "item is neither a campaign id nor an object with an id; skipped")
    fields = {_header_key(str(key)): field for key, field in cast(dict[Any, Any], value).items()}
    raw_id = next((fields[key] for key in ("id", "campaignid", "campaignuuid", "uuid") if key in fields), None)
    name = fields.get("name", fields.get("campaignname"))
    tags: object = fields.get("tags", fields.get("tag", []))
    if raw_id is not None and not isinstance(raw_id, str):
        return (line, None, None, (), "id is not a string; skipped")
    if name is not None and not isinstance(name, str):
        return (line, None, None, (), "name is not a string; skipped")
    if isinstance(tags, str):
        tag_tuple = _split_tags(tags)
    elif isinstance(tags, list) and all(isinstance(tag, str) for tag in cast(list[Any], tags)):
        tag_tuple = tuple(dict.fromkeys(tag.strip() for tag in cast(list[str], tags) if tag.strip()))
    elif tags is None:
        tag_tuple = ()
    else:
        return (line, None, None, (), "tags is neither a list of strings nor a string; skipped")
    return (line, (raw_id or "").strip() or None, (name or "").strip() or None, tag_tuple, None)


def _collect(items: list[_Item]) -> tuple[list[ImportRow], list[ImportProblem]]:
    rows: list[ImportRow] = []
    problems: list[ImportProblem] = []
    first_line: dict[str, int] = {}
    for line, raw_id, name, tags, reason in items:
        if reason is not None:
            problems.append(ImportProblem(line, reason))
            continue
        if raw_id is None:
            problems.append(ImportProblem(line, "no campaign id; skipped"))
            continue
        campaign_id = campaign_id_from(raw_id)
        if campaign_id is None:
            problems.append(
                ImportProblem(line, f"{raw_id[:80]!r} is not a campaign UUID or a link to a campaign; skipped")
            )
        elif campaign_id in first_line:
            problems.append(
                ImportProblem(line, f"campaign {campaign_id} is already on line {first_line[campaign_id]}; skipped")
            )
        elif name is not None and len(name) > MAX_NAME_LENGTH:
            problems.append(ImportProblem(line, f"name is longer than {MAX_NAME_LENGTH} characters; skipped"))
        elif len(tags) > MAX_TAGS or any(len(tag) > MAX_TAG_LENGTH for tag in tags):
            problems.append(
                ImportProblem(
                    line, f"more than {MAX_TAGS} tags, or a tag longer than {MAX_TAG_LENGTH} characters; skipped"
                )
            )
        else:
            first_line[campaign_id] = line
            rows.append(ImportRow(line=line, campaign_id=campaign_id, name=name, tags=tags))
    return rows, problems
