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


H = "flowc: 1\nname: demo\n"
STEP = "steps:\n  a:\n    command: [echo]\n"
ENGINE_CASES = [
    (
        "nan_param",
        H + "params:\n  x: {type: float, default: .nan}\n" + STEP,
        "flow.yaml:4:29: error: nan is not allowed: compiled specs are JSON, which has no NaN "
        "or infinity",
    ),
    (
        "inf_with",
        H + "steps:\n  a: {run: m:f, with: {v: -.inf}}\n",
        "flow.yaml:4:27: error: -inf is not allowed: compiled specs are JSON, which has no NaN "
        "or infinity",
    ),
    (
        "huge_int",
        H + "steps:\n  a: {run: m:f, with: {v: 9223372036854775808}}\n",
        "flow.yaml:4:27: error: integer out of range: engines store integers in 64 bits",
    ),
    (
        "retries",
        H + STEP + "    retries: 99999999999999999999\n",
        "flow.yaml:6:14: error: step 'a': retries is 99999999999999999999; at most 100",
    ),
    (
        "retries_default",
        H + "defaults:\n  retries: 101\n" + STEP,
        "flow.yaml:4:12: error: step 'a': retries is 101; at most 100",
    ),
    (
        "long_tag",
        H + f"tags: [ok, {'t' * 101}]\n" + STEP,
        "flow.yaml:3:12: error: tag is 101 characters long; at most 100",
    ),
    (
        "env_equals",
        H + STEP + "    env: {A=B: 1}\n",
        "flow.yaml:6:11: error: step 'a': invalid env var name 'A=B'",
    ),
    (
        "env_empty",
        H + STEP + "    env: {'': 1}\n",
        "flow.yaml:6:11: error: step 'a': invalid env var name ''",
    ),
    (
        "env_shell",
        H + "defaults:\n  env: {'x y;': 1}\n" + STEP,
        "flow.yaml:4:9: error: step 'a': invalid env var name 'x y;'",
    ),
    (
        "secret_env",
        H + "secrets:\n  t: {env: 'A B'}\n" + STEP,
        "flow.yaml:4:12: error: secret 't': invalid env var name 'A B'",
    ),
    (
        "k8s_secret_name",
        H + "secrets:\n  t: {k8s: {name: My_Secret, key: token}}\n" + STEP,
        "flow.yaml:4:19: error: secret 't': invalid Kubernetes secret name 'My_Secret'",
    ),
    (
        "k8s_secret_key",
        H + "secrets:\n  t: {k8s: {name: my-secret, key: 'a/b'}}\n" + STEP,
        "flow.yaml:4:35: error: secret 't': invalid Kubernetes secret key 'a/b'",
    ),
    (
        "image_space",
        H + STEP + "    image: 'trainer:1 latest'\n",
        "flow.yaml:6:12: error: step 'a': invalid image reference 'trainer:1 latest'",
    ),
    (
        "image_upper",
        H + "defaults:\n  image: Trainer:1\n" + STEP,
        "flow.yaml:4:10: error: step 'a': invalid image reference 'Trainer:1'",
    ),
    (
        "when_newline",
        H
        + "params:\n  s: {type: str, default: a}\n"
        + STEP
        + "    when: \"${params.s} == 'a\\nb'\"\n",
        "flow.yaml:8:11: error: step 'a': 'when' has a control character (newline, tab, ...) in "
        "a string",
    ),
    (
        "when_1e400",
        H
        + "params:\n  x: {type: float, default: 1.0}\n"
        + STEP
        + "    when: '${params.x} > 1e400'\n",
        "flow.yaml:8:11: error: step 'a': 'when' has the number inf",
    ),
]


@pytest.mark.parametrize("name,text,expected", ENGINE_CASES, ids=[c[0] for c in ENGINE_CASES])
def test_values_engines_reject_are_validate_errors(name: str, text: str, expected: str) -> None:
    from flowc.compiler.api import load_text
    from flowc.compiler.errors import FlowcError

    with pytest.raises(FlowcError) as ei:
        load_text(text, "flow.yaml", environ={})
    lines = ei.value.render().splitlines()
    assert lines[0] == expected
    assert lines[1].startswith("  hint: ")


def test_values_engines_accept_stay_valid() -> None:
    from flowc.compiler.api import load_text

    text = (
        H
        + f"tags: [{'t' * 100}]\n"
        + "secrets:\n  t: {env: TOKEN_1, k8s: {name: my.secret-1, key: .token_A-1}}\n"
        + "params:\n  x: {type: float, default: 1.0e+300}\n"
        + "steps:\n  a:\n    command: [echo]\n    retries: 100\n"
        + "    env: {_A1: 1, b: 2}\n"
        + "    image: 'localhost:5000/team/trainer_x.y:v1.2-rc@sha256:"
        + "0" * 64
        + '\'\n    when: "${params.x} > 1.5e10"\n'
        + "  b: {command: [echo], image: 'gcr.io/acme/x', when: \"'a b' == 'a b'\"}\n"
    )
    ir = load_text(text, "flow.yaml", environ={})
    assert ir.steps[0].retries == 100
