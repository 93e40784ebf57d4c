"""Logging to stderr through the one redaction point that keeps tokens and keys out of every log record."""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["REDACTED", "RedactingFilter", "configure_logging", "redact", "register_secret"]

REDACTED = "[REDACTED]"
_MAX_SECRETS = 4096  # per-request tenant tokens are registered too; keep the newest
_secrets: OrderedDict[str, None] = OrderedDict()
_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None
# Credentials that look like credentials are redacted even when nobody registered them. A word with no digit and
# under 20 characters is prose ("invalid bearer token."), not a credential; registered secrets are redacted anyway.
_SHAPES = re.compile(
    r"(?i)(bearer\s+|x-experiture-token[\"']?\s*[:=,]\s*[\"']?|authorization[\"']?\s*[:=,]\s*[\"']?)"
    r"(?!\[REDACTED\])(?=[^\s\"',;)}\]]*\d|[^\s\"',;)}\]]{20})[^\s\"',;)}\]]+"
)
_SHAPE_WORDS = ("bearer", "authorization", "x-experiture-token")


def register_secret(secret: str | None) -> None:
    """Remember a secret so that every later log line and error text has it replaced."""
    global _pattern
    secret = secret.strip() if secret else secret  # a pasted line break is stripped before the token is sent
    if not secret or len(secret) < 4:
        return
    with _lock:
        if secret in _secrets:
            _secrets.move_to_end(secret)
            return
        _secrets[secret] = None
        while len(_secrets) > _MAX_SECRETS:
            _secrets.popitem(last=False)
        _pattern = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))


def redact(text: str) -> str:
    """The text with every registered secret and anything shaped like a credential replaced."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    if not _may_hold_a_shape(text):
        return text
    return _SHAPES.sub(lambda m: m.group(1) + REDACTED, text)


def _may_hold_a_shape(text: str) -> bool:
    # What _SHAPES needs, found without it: scanning every position with the case-insensitive pattern costs about
    # ten times more, on every tool result. Under (?i) the only characters beyond ASCII that match these words' letters
    # are the Kelvin sign (lower() makes it k) and the Turkish İ and ı (looked for as they are).
    lowered = text.lower()
    return any(word in lowered for word in _SHAPE_WORDS) or "İ" in text or "ı" in text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (arguments and traceback included) through `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        if record.stack_info:
            message += "\n" + record.stack_info
            record.stack_info = None
        record.msg = redact(message)
        record.args = None
        return True


def _redacting_record_factory(base: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    # Records are redacted as they are made, so handlers we do not own (the SDK's, uvicorn's) get clean text too.
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            message = record.getMessage()
            trace = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        except Exception:
            return record  # a malformed call: the handler reports it, as logging always does
        if redact(message) != message:
            record.msg, record.args = redact(message), None  # args are left alone otherwise: formatters use them
        if trace and redact(trace) != trace:
            record.msg, record.args = f"{record.msg}\n{redact(trace)}", None
            record.exc_info, record.exc_text = None, None
        return record

    setattr(make, "_experiture", True)  # noqa: B010 - marks our factory so a second call wraps none
    return make


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to `sys.stderr` as it is when each record is emitted, not as it was when the handler was made."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        # A test runner (or an embedding program) swaps sys.stderr and closes the old one; a stream bound once would
        # then fail on every later record. Handler.handle holds the lock around emit, so this is thread-safe.
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every log record to stderr (stdout is the protocol wire), redacted, with quiet HTTP libraries."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "_experiture", False):
        logging.setLogRecordFactory(_redacting_record_factory(factory))
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "_experiture", False):
            return
    handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    setattr(handler, "_experiture", True)  # noqa: B010 - marks our handler so a second call adds none
    root.addHandler(handler)
    root.setLevel(level)
    # httpx2 logs each request at INFO; the URL carries no secret, but one line per call is noise.
    for name in ("httpx2", "httpcore2", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # stamina logs every scheduled retry at WARNING with no detail in the message; client.py logs them at INFO.
    logging.getLogger("stamina").setLevel(logging.ERROR)


def redact_any(value: Any) -> Any:
    """`redact` applied to strings inside nested lists and dicts."""
    strings: list[str] = []
    _strings(value, strings)
    # Both checks look for substrings, so what none of them finds in the joined text no single string holds: a tool
    # result is then returned as it is, at a quarter of the cost of rebuilding it string by string.
    joined = "\n".join(strings)
    pattern = _pattern
    if (pattern is None or pattern.search(joined) is None) and not _may_hold_a_shape(joined):
        return value
    return _redact_each(value)


def _strings(value: Any, into: list[str]) -> None:
    if isinstance(value, str):
        into.append(value)
    elif isinstance(value, list):
        for item in value:  # pyright: ignore[reportUnknownVariableType]
            _strings(item, into)
    elif isinstance(value, dict):
        for item in value.values():  # pyright: ignore[reportUnknownVariableType]
            _strings(item, into)


def _redact_each(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redact_each(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, dict):
        return {k: _redact_each(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    return value
