"""benchmarks/RESULTS.md: each benchmark writes its own section between its markers, leaving the others alone."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def markers(name: str) -> tuple[str, str]:
    """The comments that open and close a benchmark's section."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(name: str, body: str, path: Path = RESULTS) -> None:
    """Put `body` between `name`'s markers, in place of what was there, or at the end when there is no such section."""
    start, end = markers(name)
    body = body.strip("\n")
    if not body.startswith(start):
        body = f"{start}\n{body}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if start in text and end in text[text.index(start) :]:
        at = text.index(start)
        text = text[:at] + body + text[text.index(end, at) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    path.write_text(text, encoding="utf-8")
