"""The snapshot helper: equal text passes, a change shows a diff, a missing file is written locally and fails in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from _snapshot import HOW_TO_UPDATE, snapshot_mismatch


def test_equal_text_passes_and_changed_text_shows_a_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPDATE_SNAPSHOTS", raising=False)
    (tmp_path / "tool").mkdir()
    (tmp_path / "tool" / "case.txt").write_text("line one\nline two\n")

    assert snapshot_mismatch("tool/case", "line one\nline two", tmp_path) is None
    problem = snapshot_mismatch("tool/case", "line one\nline 2\n", tmp_path)

    assert problem is not None
    assert "-line two\n+line 2\n" in problem and HOW_TO_UPDATE in problem


def test_a_missing_snapshot_is_written_locally_but_fails_in_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPDATE_SNAPSHOTS", raising=False)
    monkeypatch.setenv("CI", "true")

    problem = snapshot_mismatch("new/case", "text", tmp_path)

    assert problem is not None and "does not exist" in problem and HOW_TO_UPDATE in problem
    assert not (tmp_path / "new" / "case.txt").exists()
    monkeypatch.setenv("CI", "false")
    assert snapshot_mismatch("new/case", "text", tmp_path) is None
    assert (tmp_path / "new" / "case.txt").read_text() == "text\n"


def test_update_snapshots_rewrites_a_changed_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("UPDATE_SNAPSHOTS", "1")
    (tmp_path / "case.txt").write_text("old\n")

    assert snapshot_mismatch("case", "new", tmp_path) is None
    assert (tmp_path / "case.txt").read_text() == "new\n"
