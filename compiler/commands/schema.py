"""``flowc schema``: the JSON Schema of flow files, generated from the pydantic models."""

from __future__ import annotations

import json

import click


@click.command()
def schema() -> None:
    """Print the JSON Schema of the DSL (for YAML editors)."""
    from flowc.compiler.schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2, sort_keys=True))
