"""Hostile user input gets located errors (exit 1), never a traceback, and never stops a
multi-file ``validate``: bad YAML scalars, over-long names, unwritable ``-o`` folders, a damaged
run history (with the schema version and migrations of ``.flowc/metadata.db``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowc.compiler.cli import cli
from flowc.runtime import metadata

GOOD = "flowc: 1\nname: demo\nsteps:\n  a: {command: [echo, hi]}\n"


def invoke(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, list(args))
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert "Traceback" not in res.output
    return res.exit_code, res.stderr


@pytest.mark.parametrize(
    "value,message",
    [
        ("!!float x", "'x' is not a valid !!float"),
        ("!!int x", "'x' is not a valid !!int"),
        ("!!bool x", "'x' is not a valid !!bool"),
        ("!!int 0x", "'0x' is not a valid !!int"),
        ("9" * 5000, "integer with 5000 digits is too large"),
    ],
)
def test_bad_scalars_are_located_and_validate_goes_on(
    tmp_path: Path, value: str, message: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"flowc: 1\nname: demo\nsteps:\n  a: {{command: [echo], retries: {value}}}\n")
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    code, err = invoke("validate", str(bad), str(good), str(bad))
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == f"{bad}:4:33: error: {message}"
    assert err.count(message) == 2  # both bad files reported: the first did not abort the run
    assert lines[-1] == "2 of 3 flow(s) invalid"


def test_long_flow_name_is_located(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(GOOD.replace("demo", "a" * 251))
    code, err = invoke("compile", str(flow), "--target", "airflow", "-o", str(tmp_path / "o"))
    assert code == 1
    assert err.startswith(f"{flow}:2:7: error: the flow name is 251 characters long")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("out", ["FLOW/sub", "/proc/x", "/dev/null"])
@pytest.mark.parametrize("mode", ["--target=airflow", "--all"])
def test_unwritable_output_dir_is_an_error(tmp_path: Path, out: str, mode: str) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(GOOD)
    out = out.replace("FLOW", str(flow))
    code, err = invoke("compile", str(flow), mode, "-o", out)
    assert code == 1
    assert err.startswith(f"flowc: error: cannot write the outputs under '{out}'"), err
    assert "hint:" in err


def _history(tmp_path: Path) -> Path:
    flow = tmp_path / "flow.yaml"
    flow.write_text(GOOD)
    root = tmp_path / ".flowc"
    code, _ = invoke("run", str(flow), "--root", str(root))
    assert code == 0
    return root / "metadata.db"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_run_history_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    db = _history(tmp_path)
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    data = db.read_bytes()
    db.write_bytes(b"garbage\n" * 10 if damage == "garbage" else data[:3000])
    root = str(db.parent)
    for args in (
        ("runs", "list", "--root", root),
        ("runs", "show", "x", "--root", root),
        ("run", str(tmp_path / "flow.yaml"), "--root", root),
    ):
        code, err = invoke(*args)
        assert code == 1, args
        assert "metadata.db is damaged or not a flowc store" in err, (args, err)
        assert "hint: move it aside" in err


def test_run_history_has_a_schema_version_and_forward_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = _history(tmp_path)
    con = sqlite3.connect(db)
    assert con.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    # a store from before versioning (no table) is version 1
    con.execute("DROP TABLE schema_version")
    con.commit()
    con.close()
    monkeypatch.setattr(metadata, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(metadata, "MIGRATIONS", {2: "ALTER TABLE runs ADD COLUMN note TEXT"})
    store = metadata.MetadataStore(root=db.parent)
    assert len(store.runs()) == 1  # the old run is kept
    store.close()
    con = sqlite3.connect(db)
    cols = [r[1] for r in con.execute("PRAGMA table_info(runs)")]
    assert "note" in cols
    assert con.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    con.close()
    # opened again: nothing to migrate (the ALTER would fail if it ran twice)
    metadata.MetadataStore(root=db.parent).close()
    # a newer store than this flowc reads is refused with a hint
    monkeypatch.setattr(metadata, "SCHEMA_VERSION", 1)
    with pytest.raises(metadata.MetadataError, match="written by a newer flowc") as ei:
        metadata.MetadataStore(root=db.parent)
    assert ei.value.hint and "upgrade flowc" in ei.value.hint
