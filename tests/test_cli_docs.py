"""docs/cli.md is generated from the click commands and must be current."""

from __future__ import annotations

from pathlib import Path

from flowc.compiler.cli import COMMANDS
from flowc.compiler.cli_docs import markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_cli_reference_is_current() -> None:
    assert (
        DOC.read_text(encoding="utf-8") == markdown()
    ), "regenerate: python -m flowc.compiler.cli_docs > docs/cli.md"


def test_cli_reference_covers_every_command_and_subcommand() -> None:
    text = DOC.read_text(encoding="utf-8")
    for name in COMMANDS:
        assert f"\n## `flowc {name}`\n" in text, name
    for sub in ("runs list", "runs show", "components list", "plugins list"):
        assert f"\n## `flowc {sub}`\n" in text, sub
    assert text.count("Usage: flowc") >= len(COMMANDS) + 4
