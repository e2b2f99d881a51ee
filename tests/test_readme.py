"""The README's configuration table lists every setting the code reads (one list: pipeline/settings.py)."""

from __future__ import annotations

from pathlib import Path

from pipeline.settings import SETTINGS, markdown_table

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [s.env for s in SETTINGS if f"| `{s.env}` |" not in README]
    assert missing == []


def test_the_configuration_table_is_the_generated_one() -> None:
    """`pipeline config --markdown` and the README show the same list; regenerate the table when this fails."""
    assert markdown_table() in README


def test_the_two_commands_come_first() -> None:
    first_block = README.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block
