"""``flowc schema``: the JSON Schema of flow files, generated from the pydantic models and
annotated for editors (:mod:`flowc.compiler.schema_docs`); docs/flowc.schema.json is its
committed copy."""

from __future__ import annotations

import json

import click


@click.command()
def schema() -> None:
    """Print the JSON Schema of the DSL (for YAML editors)."""
    from flowc.compiler.schema_docs import editor_schema

    click.echo(json.dumps(editor_schema(), indent=2, sort_keys=True))
