"""Does a text still say everything a JSON body says? Walk the JSON's leaves and look for each in the text."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["FactCheck", "approx_tokens", "check_facts"]

_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ENVELOPE = {"success"}  # says nothing about the campaign


def approx_tokens(text: str) -> int:
    """Roughly one token per four characters (no tokenizer is downloaded at run time)."""
    return round(len(text) / 4)


@dataclass
class FactCheck:
    """Which leaves of a JSON body were found in a text."""

    checked: int = 0
    missing: list[str] = field(default_factory=list[str])
    cut: list[str] = field(default_factory=list[str])  # long text shown shortened with "…", on purpose
    skipped: int = 0  # nulls and empty lists: absences, phrased freely ("never", "none", "n/a")
    fact_bytes: int = 0  # the shortest form of every checked leaf: what any text keeping them all must carry

    @property
    def kept(self) -> int:
        return self.checked - len(self.missing) - len(self.cut)


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():  # pyright: ignore[reportUnknownVariableType]
            yield from _leaves(item, f"{path}.{key}" if path else str(key))  # pyright: ignore[reportUnknownArgumentType]
    elif isinstance(value, list):
        if not value:
            yield path, []
        for i, item in enumerate(value):  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
            yield from _leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def _display(text: str) -> str:
    # Untrusted strings may be shown without control and invisible characters, with whitespace collapsed.
    kept = "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf"))
    return " ".join(kept.split())


def _number_forms(value: int | float) -> list[str]:
    if isinstance(value, float) and not value.is_integer():
        return [repr(value)]
    return sorted({f"{int(value):,}", str(int(value))})


def _time_forms(value: str) -> list[str]:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    minute = moment.strftime("%Y-%m-%d %H:%M")
    forms = [value, moment.strftime("%Y-%m-%d %H:%M:%S") + " UTC"]
    if moment.second == 0:
        forms.append(minute + " UTC")
    return forms


def _word(path: str) -> str:
    key = re.split(r"[.\[]", path)[-1]
    words = re.sub(r"(?<!^)([A-Z])", r" \1", key).lower().split()
    return " ".join(w for w in words if w not in ("is", "has"))


def _shortest(path: str, value: Any) -> str:
    if isinstance(value, bool):
        return _word(path) if value else "not " + _word(path)
    if isinstance(value, int | float):
        return min(_number_forms(value), key=len)
    if _ISO_TIME.match(value):
        return min(_time_forms(value), key=len)
    return _display(value)


def _cut_in(text: str, value: Any) -> bool:
    # A long name shown as its first part and "…": the rest is deliberately dropped.
    if not isinstance(value, str) or len(value) < 40:
        return False
    shown = _display(value)
    return any(shown[:n].rstrip() + "…" in text for n in range(20, len(shown)))


def _found(text: str, path: str, value: Any) -> bool:
    if isinstance(value, bool):
        word = re.escape(_word(path))
        negated = rf"(not |in|un|non-?){word}\b"
        if value:
            return re.search(rf"(?<!not )(?<![\w-]){word}\b", text, re.I) is not None
        return (
            re.search(negated, text, re.I) is not None or re.search(rf"{word}\W+(no|false)\b", text, re.I) is not None
        )
    if isinstance(value, int | float):
        return any(re.search(rf"(?<![\w.,]){re.escape(f)}(?![\w]|[.,]\d)", text) for f in _number_forms(value))
    assert isinstance(value, str)
    if _ISO_TIME.match(value):
        return any(form in text for form in _time_forms(value))
    if _UUID.match(value):
        return value.lower() in text.lower()
    shown = _display(value)
    return shown in text or shown.replace('"', '\\"') in text


def check_facts(body: Any, text: str) -> FactCheck:
    """Every leaf of `body` (but nulls, empty lists and the success flag) must appear in `text`."""
    result = FactCheck()
    for path, value in _leaves(body):
        if path in _ENVELOPE or value is None or value == []:
            result.skipped += 1
            continue
        result.checked += 1
        result.fact_bytes += len(_shortest(path, value).encode())
        if _found(text, path, value):
            continue
        if _cut_in(text, value):
            result.cut.append(f"{path}={value!r}")
        else:
            result.missing.append(f"{path}={value!r}")
    return result
