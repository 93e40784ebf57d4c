"""Snapshot files: compare text with tests/snapshots/<name>.txt; UPDATE_SNAPSHOTS=1 rewrites them."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

SNAPSHOTS = Path(__file__).parent / "snapshots"
HOW_TO_UPDATE = "UPDATE_SNAPSHOTS=1 uv run --frozen pytest tests/"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def snapshot_mismatch(name: str, text: str, root: Path = SNAPSHOTS) -> str | None:
    """None when `text` equals the stored snapshot `name`, else what is wrong and how to fix it.

    With UPDATE_SNAPSHOTS=1 the snapshot is (re)written. A missing snapshot is written and accepted, except in
    CI (CI=true), where it is a mismatch: CI must check committed snapshots, never create them.
    """
    path = root / f"{name}.txt"
    text = text if text.endswith("\n") else text + "\n"
    if _flag("UPDATE_SNAPSHOTS") or (not path.exists() and not _flag("CI")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return None
    if not path.exists():
        return f"snapshot {name} does not exist ({path}). Create it with `{HOW_TO_UPDATE}`, read it, and commit it."
    stored = path.read_text(encoding="utf-8")
    if stored == text:
        return None
    diff = "".join(difflib.unified_diff(stored.splitlines(True), text.splitlines(True), "snapshot", "actual"))
    return f"text differs from snapshot {name} (if intended: `{HOW_TO_UPDATE}`, then read the diff):\n{diff}"


def assert_snapshot(name: str, text: str) -> None:
    """Fail unless `text` equals the stored snapshot `name` (see `snapshot_mismatch`)."""
    problem = snapshot_mismatch(name, text)
    if problem is not None:
        pytest.fail(problem, pytrace=False)
