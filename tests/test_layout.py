"""The sandbox stays split by concern (state, GraphQL, page rendering, faults): no file past 400 lines."""

from __future__ import annotations

from pathlib import Path

SANDBOX = Path(__file__).resolve().parent.parent / "sandbox"
MAX_LINES = 400


def test_no_sandbox_file_passes_400_lines() -> None:
    sizes = {p.relative_to(SANDBOX).as_posix(): len(p.read_text().splitlines())
             for p in SANDBOX.rglob("*") if p.is_file() and p.suffix in {".py", ".js", ".html", ".css"}}
    assert sizes, "no sandbox files found"
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
