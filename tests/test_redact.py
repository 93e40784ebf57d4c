"""redact(): credential shapes are caught however the header name is cased, and plain text passes unchanged."""

from __future__ import annotations

import pytest

from experiture_mcp.logs import REDACTED, redact

SECRET = "sk_live_1234567890abcdef"


@pytest.mark.parametrize(
    "prefix",
    [
        "Authorization: Bearer ",
        "authorization: ",
        "AUTHORIZATION=",
        "bearer ",
        "BEARER\t",
        "x-experiture-token: ",
        "X-Experiture-Token=",
        # Case-insensitive matching also folds these three non-ASCII letters onto i and k.
        "authorİzation: ",
        "authorızation: ",
        "x-experiture-to\u212aen: ",
    ],
)
def test_a_credential_after_any_casing_of_a_header_name_is_redacted(prefix: str) -> None:
    text = f"upstream said: {prefix}{SECRET} (then more)"
    redacted = redact(text)
    assert SECRET not in redacted
    assert REDACTED in redacted


def test_text_without_a_credential_shape_is_returned_unchanged() -> None:
    text = 'Campaign "Spring" · sent 17,480 → failed 5 · invalid bearer token. İstanbul ı'
    assert redact(text) == text
