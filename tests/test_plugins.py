"""Plugins: registry paths, the run lifecycle (initialize -> steps -> shutdown, also when the run
fails), ctx.plugins, disabled plugins never imported, health output, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flowc.compiler.api import compile_flow
from flowc.compiler.cli import cli
from flowc.compiler.errors import FlowcError
from flowc.runtime import plugins as pl
from flowc.runtime.executor import run_plan

RECORDER = "flowc_stackfix.plugins:RecorderPlugin"
EXPLODING = "flowc_stackfix.exploding_plugin:Whatever"


def write_flow(tmp_path: Path, plugins: str, steps: str) -> Path:
    text = f"""
flowc: 1
name: plugged
plugins:
{textwrap.indent(textwrap.dedent(plugins).strip(), "  ")}
steps:
{textwrap.indent(textwrap.dedent(steps).strip(), "  ")}
"""
    path = tmp_path / "flow.yaml"
    path.write_text(text.lstrip())
    return path


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def short(evs: list[dict]) -> list[str]:
    out = []
    for e in evs:
        if e["event"] == "step":
            out.append(f"step:{e['step']}")
        elif e["event"] == "log_metrics":
            out.append(f"{e['plugin']}.log:{','.join(e['metrics'])}")
        else:
            out.append(f"{e['plugin']}.{e['event']}")
    return out


def test_lifecycle_order_and_ctx_plugins(tmp_path: Path) -> None:
    ev = tmp_path / "events.jsonl"
    f = write_flow(
        tmp_path,
        f"""
        tracker: {{type: "{RECORDER}", enabled: true, config: {{events: "{ev}", label: first}}}}
        second: {{type: "{RECORDER}", enabled: true, config: {{events: "{ev}", label: second}}}}
        """,
        f"""
        a: {{run: "flowc_stackfix.steps:work", with: {{events: "{ev}", name: a}}, outputs: [n]}}
        b: {{run: "flowc_stackfix.steps:work", with: {{events: "{ev}", name: b}}, after: [a], outputs: [n]}}
        """,
    )
    result = run_plan(compile_flow(f).to_data(), root=str(tmp_path / ".flowc"))
    assert result.ok, result.error
    got = events(ev)
    assert short(got) == [
        "first.initialize",
        "first.run_start",
        "second.initialize",
        "second.run_start",
        "step:a",
        "first.log:a",
        "step:b",
        "first.log:b",
        "second.run_end",
        "second.shutdown",
        "first.run_end",
        "first.shutdown",
    ]
    assert {e["run_id"] for e in got if e["event"] == "run_start"} == {result.run_id}
    assert [e["status"] for e in got if e["event"] == "run_end"] == ["success", "success"]
    assert [e["plugins"] for e in got if e["event"] == "step"] == [["second", "tracker"]] * 2


def test_shutdown_happens_when_the_run_fails(tmp_path: Path) -> None:
    ev = tmp_path / "events.jsonl"
    f = write_flow(
        tmp_path,
        f'tracker: {{type: "{RECORDER}", enabled: true, config: {{events: "{ev}"}}}}',
        f"""
        a: {{run: "flowc_stackfix.steps:work", with: {{events: "{ev}", name: a}}, outputs: [n]}}
        boom: {{run: "flowc_stackfix.steps:boom", with: {{events: "{ev}"}}, after: [a]}}
        never: {{run: "flowc_stackfix.steps:work", with: {{events: "{ev}", name: never}}, after: [boom]}}
        """,
    )
    result = run_plan(compile_flow(f).to_data(), root=str(tmp_path / ".flowc"))
    assert not result.ok and "boom" in result.error.render()
    assert short(events(ev)) == [
        "rec.initialize",
        "rec.run_start",
        "step:a",
        "rec.log:a",
        "step:boom",
        "rec.run_end",
        "rec.shutdown",
    ]
    # the plugins are told how the run ended (e.g. MLflow marks its run FAILED)
    assert [e.get("status") for e in events(ev) if e["event"] == "run_end"] == ["failed"]


def test_failing_initialize_shuts_down_the_started_ones(tmp_path: Path) -> None:
    ev = tmp_path / "events.jsonl"
    f = write_flow(
        tmp_path,
        f"""
        tracker: {{type: "{RECORDER}", enabled: true, config: {{events: "{ev}", label: ok}}}}
        broken: {{type: "{RECORDER}", enabled: true, config: {{events: "{ev}", label: bad, fail_on: initialize}}}}
        """,
        f'a: {{run: "flowc_stackfix.steps:work", with: {{events: "{ev}", name: a}}}}',
    )
    result = run_plan(compile_flow(f).to_data(), root=str(tmp_path / ".flowc"))
    assert not result.ok
    assert (
        "plugin 'broken'" in result.error.render()
        and "failed to initialize" in result.error.render()
    )
    assert short(events(ev)) == [
        "ok.initialize",
        "ok.run_start",
        "bad.initialize",
        "ok.run_end",
        "ok.shutdown",
    ]


def test_lifecycle_through_flowc_run(tmp_path: Path) -> None:
    """The same order from the command line (a fresh process: the plugin type is a
    module:Class reference, nothing registered in advance)."""
    ev = tmp_path / "events.jsonl"
    f = write_flow(
        tmp_path,
        f'tracker: {{type: "{RECORDER}", enabled: true, config: {{events: "{ev}"}}}}',
        f"""
        a: {{run: "flowc_stackfix.steps:work", with: {{events: "{ev}", name: a}}}}
        boom: {{run: "flowc_stackfix.steps:boom", with: {{events: "{ev}"}}, after: [a]}}
        """,
    )
    res = subprocess.run(
        [sys.executable, "-m", "flowc", "run", str(f), "--root", str(tmp_path / ".flowc")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 1, res.stderr
    assert "ValueError: boom" in res.stderr
    assert short(events(ev))[-2:] == ["rec.run_end", "rec.shutdown"]
    assert short(events(ev))[:2] == ["rec.initialize", "rec.run_start"]


def test_disabled_plugin_is_never_imported(tmp_path: Path) -> None:
    ev = tmp_path / "events.jsonl"
    f = write_flow(
        tmp_path,
        f"""
        tracker: {{type: "{RECORDER}", enabled: true, config: {{events: "{ev}"}}}}
        exploding: {{type: "{EXPLODING}", enabled: false, config: {{anything: 1}}}}
        """,
        f'a: {{run: "flowc_stackfix.steps:work", with: {{events: "{ev}", name: a}}}}',
    )
    ir = compile_flow(f)
    assert [(p.name, p.enabled) for p in ir.plugins] == [("tracker", True), ("exploding", False)]
    result = run_plan(ir.to_data(), root=str(tmp_path / ".flowc"))
    assert result.ok, result.error
    assert "flowc_stackfix.exploding_plugin" not in sys.modules
    # health: reported as disabled, still not imported
    res = CliRunner().invoke(cli, ["plugins", "list", str(f), "--health"])
    assert res.exit_code == 0, res.output
    row = [ln for ln in res.output.splitlines() if ln.startswith("exploding")]
    assert row and "disabled" in row[0]
    assert "flowc_stackfix.exploding_plugin" not in sys.modules
    # and the same module does explode when enabled (the check above can fail)
    f.write_text(f.read_text().replace("enabled: false", "enabled: true"))
    result = run_plan(compile_flow(f).to_data(), root=str(tmp_path / ".flowc"))
    assert not result.ok and "exploding_plugin was imported" in result.error.render()
    sys.modules.pop("flowc_stackfix.exploding_plugin", None)


def test_a_plugin_without_enabled_is_disabled(tmp_path: Path) -> None:
    """As ExperimentHub's registry (``.get("enabled", False)``): no ``enabled`` key, not run."""
    ev = tmp_path / "events.jsonl"
    f = write_flow(
        tmp_path,
        f"""
        tracker: {{type: "{RECORDER}", config: {{events: "{ev}"}}}}
        exploding: {{type: "{EXPLODING}"}}
        """,
        f'a: {{run: "flowc_stackfix.steps:work", with: {{events: "{ev}", name: a}}}}',
    )
    ir = compile_flow(f)
    assert [(p.name, p.enabled) for p in ir.plugins] == [("tracker", False), ("exploding", False)]
    assert [s["enabled"] for s in ir.to_data()["plugins"].values()] == [False, False]
    result = run_plan(ir.to_data(), root=str(tmp_path / ".flowc"))
    assert not result.ok
    # the step ran and was told why the plugin is missing; no plugin was built
    assert short(events(ev)) == ["step:a"]
    assert "plugin 'tracker' is disabled (enabled: none)" in result.error.render()
    assert "'enabled: true'" in result.error.render()
    assert "flowc_stackfix.exploding_plugin" not in sys.modules
    res = CliRunner().invoke(cli, ["plugins", "list", str(f)])
    assert [ln.split()[-1] for ln in res.output.splitlines()[1:]] == ["no", "no"]
    # a hand-written plan's spec without the key is disabled too
    svc = pl.service({"plugins": {"t": {"type": RECORDER, "config": {"events": str(ev)}}}})
    assert svc is not None and svc.specs == {} and svc.disabled == ("t",)
    report = pl.health({"t": {"type": RECORDER, "config": {"events": str(ev)}}})
    assert report["t"]["enabled"] is False and report["t"]["healthy"] is None


def test_disabled_registered_type_not_imported_in_a_fresh_process(tmp_path: Path) -> None:
    """Registered through an entry point whose module explodes on import: `flowc run` with the
    plugin disabled succeeds."""
    site = tmp_path / "site"
    d = site / "flowc_test_plugins-1.0.dist-info"
    d.mkdir(parents=True)
    (d / "METADATA").write_text("Metadata-Version: 2.1\nName: flowc-test-plugins\nVersion: 1.0\n")
    (d / "entry_points.txt").write_text(f"[flowc.plugins]\nexploding = {EXPLODING}\n")
    f = write_flow(
        tmp_path,
        "stream: {type: exploding, enabled: false}",
        'a: {run: "flowc_demo.steps:echo", with: {value: 1}, outputs: [v]}',
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ["PYTHONPATH"]])}
    flowc = [sys.executable, "-m", "flowc"]
    res = subprocess.run(
        [*flowc, "run", str(f)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    out = subprocess.run(
        [*flowc, "plugins", "list"], capture_output=True, text=True, env=env
    ).stdout
    assert any(
        ln.split()[:2] == ["exploding", "entry"] and "(flowc-test-plugins)" in ln
        for ln in out.splitlines()
    ), out
    # enabled, it is imported (and fails the run with a clear message)
    f.write_text(f.read_text().replace("enabled: false", "enabled: true"))
    res = subprocess.run(
        [*flowc, "run", str(f)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert res.returncode == 1 and "exploding_plugin was imported" in res.stderr


def test_unknown_plugin_type_is_a_located_error(tmp_path: Path) -> None:
    f = write_flow(
        tmp_path,
        "mlops: {type: mlfow, config: {tracking_uri: 'sqlite:///x.db'}, enabled: true}",
        'a: {run: "flowc_demo.steps:echo"}',
    )
    with pytest.raises(FlowcError) as ei:
        compile_flow(f)
    (d,) = ei.value.diagnostics
    assert (d.loc.line, d.loc.col) == (4, 17)
    assert d.message == "plugin 'mlops': unknown plugin type 'mlfow'"
    assert d.hint == "did you mean 'mlflow'?"
    # a disabled plugin's type is not checked (its package may not be installed here)
    f.write_text(f.read_text().replace("enabled: true", "enabled: false"))
    assert compile_flow(f).plugins[0].enabled is False


def test_registry_by_decorator_call_and_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flowc_stackfix.plugins as fx

    reg = pl.get_plugin_registry()
    assert reg.get("recorder") is fx.RecorderPlugin
    assert reg.entry("recorder").source == "decorator (flowc_stackfix.plugins)"

    class Inline(pl.DataStreamPlugin):
        pass

    reg.register(Inline, "inline")
    assert reg.get("inline") is Inline and reg.entry("inline").source.startswith("call")
    reg.register("flowc_stackfix.plugins:RecorderPlugin", "lazy_rec")
    assert reg.entry("lazy_rec").cls is None  # not imported until used
    assert reg.get("lazy_rec") is fx.RecorderPlugin

    site = tmp_path / "site"
    d = site / "flowc_test_plugins-1.0.dist-info"
    d.mkdir(parents=True)
    (d / "METADATA").write_text("Metadata-Version: 2.1\nName: flowc-test-plugins\nVersion: 1.0\n")
    (d / "entry_points.txt").write_text(f"[flowc.plugins]\nep_rec = {RECORDER}\n")
    monkeypatch.syspath_prepend(str(site))
    fresh = pl.PluginRegistry()
    assert fresh.entry("ep_rec").source == "entry point (flowc-test-plugins)"
    assert fresh.get("ep_rec") is fx.RecorderPlugin
    assert isinstance(fresh.get("ep_rec")(events=str(tmp_path / "e")), pl.Plugin)


def test_plugins_list_and_health_table(tmp_path: Path) -> None:
    ev = tmp_path / "events.jsonl"
    f = write_flow(
        tmp_path,
        f"""
        good: {{type: "{RECORDER}", enabled: true, config: {{events: "{ev}", label: good}}}}
        sick: {{type: "{RECORDER}", enabled: true, config: {{events: "{ev}", label: sick, fail_on: health}}}}
        stream: {{type: rabbitmq, enabled: false}}
        """,
        'a: {run: "flowc_demo.steps:echo"}',
    )
    runner = CliRunner()
    res = runner.invoke(cli, ["plugins", "list"])
    assert res.exit_code == 0
    names = [ln.split()[0] for ln in res.output.splitlines()[1:]]
    assert {"mlflow", "rabbitmq", "celery", "local"} <= set(names)
    res = runner.invoke(cli, ["plugins", "list", str(f)])
    assert res.exit_code == 0
    assert [ln.split() for ln in res.output.splitlines()] == [
        ["NAME", "TYPE", "ENABLED"],
        ["good", RECORDER, "yes"],
        ["sick", RECORDER, "yes"],
        ["stream", "rabbitmq", "no"],
    ]
    res = runner.invoke(cli, ["plugins", "list", str(f), "--health"])
    assert res.exit_code == 1  # one plugin is unhealthy
    rows = {ln.split()[0]: ln for ln in res.output.splitlines()}
    assert rows["NAME"].split() == ["NAME", "TYPE", "FAMILY", "HEALTH", "DETAILS"]
    assert rows["good"].split()[2:4] == ["mlops", "healthy"]
    assert '{"label": "good", "status": "ok"}' in rows["good"]
    assert rows["sick"].split()[2:4] == ["mlops", "UNHEALTHY"]
    assert rows["stream"].split()[2:4] == ["-", "disabled"]
    # every enabled plugin was initialized and shut down by the health check
    assert short(events(ev)) == [
        "good.initialize",
        "good.shutdown",
        "sick.initialize",
        "sick.shutdown",
    ]
    res = runner.invoke(cli, ["plugins", "list", "--health"])
    assert res.exit_code == 2


def test_a_step_using_a_disabled_plugin_gets_a_clear_error(tmp_path: Path) -> None:
    ev = tmp_path / "events.jsonl"
    f = write_flow(
        tmp_path,
        f'tracker: {{type: "{RECORDER}", enabled: false, config: {{events: "{ev}"}}}}',
        f'a: {{run: "flowc_stackfix.steps:work", with: {{events: "{ev}", name: a}}}}',
    )
    result = run_plan(compile_flow(f).to_data(), root=str(tmp_path / ".flowc"))
    assert not result.ok
    assert "plugin 'tracker' is disabled (enabled: none)" in result.error.render()
    assert pl.service({"plugins": {}}) is None and pl.service({}) is None


def test_ctx_plugins_namespace() -> None:
    class P(pl.MLOpsPlugin):
        pass

    ns = pl.Plugins({"mlops": P(), "queue": pl.BasePlugin()})
    assert isinstance(ns.mlops, P) and ns["mlops"] is ns.mlops and "queue" in ns
    assert ns.family("mlops") is ns.mlops and ns.family("taskqueue") is None
    with pytest.raises(AttributeError, match="no enabled plugin 'datastream'"):
        _ = ns.datastream


def test_builtin_plugin_config_is_checked_at_compile_time(tmp_path: Path) -> None:
    f = write_flow(
        tmp_path,
        """
        mlops: {type: mlflow, config: {tracking_ur: "sqlite:///m.db"}, enabled: true}
        tq: {type: celery, config: {backend_url: "db+sqlite:///r.db"}, enabled: true}
        stream: {type: rabbitmq, enabled: false, config: {nonsense: 1}}
        """,
        'a: {run: "flowc_demo.steps:echo"}',
    )
    with pytest.raises(FlowcError) as ei:
        compile_flow(f)
    got = [(d.loc.line, d.loc.col, d.message, d.hint) for d in ei.value.diagnostics]
    assert got == [
        (
            4,
            34,
            "plugin 'mlops' (mlflow): unknown config key 'tracking_ur'",
            "did you mean 'tracking_uri'?",
        ),
        (5, 3, "plugin 'tq' (celery): config needs 'broker_url'", None),
    ]


def test_compiling_does_not_import_plugin_libraries(tmp_path: Path) -> None:
    f = write_flow(
        tmp_path,
        """
        mlops: {type: mlflow, enabled: true, config: {tracking_uri: "sqlite:///m.db"}}
        tq: {type: celery, enabled: true, config: {broker_url: "sqla+sqlite:///b.db"}}
        stream: {type: rabbitmq, enabled: true, config: {host: localhost}}
        """,
        'a: {run: "flowc_demo.steps:echo"}',
    )
    code = (
        "import sys; from flowc.compiler.api import compile_flow; "
        f"compile_flow({str(f)!r}); "
        "print(sorted(m for m in ('mlflow', 'celery', 'kombu', 'pika', 'sqlalchemy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def wait_for(predicate: Any, what: str, timeout: float = 60.0) -> None:
    """Poll a file-backed condition (the plugin threads write the events file)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_every_health_check_has_a_timeout(tmp_path: Path) -> None:
    import flowc_stackfix.plugins as fx

    fx.RELEASE.clear()
    ev = tmp_path / "events.jsonl"
    f = write_flow(
        tmp_path,
        f"""
        slow: {{type: "{RECORDER}", enabled: true, health_timeout: 2s, config: {{events: "{ev}", label: slow, hang_on: health}}}}
        stuck: {{type: "{RECORDER}", enabled: true, health_timeout: 2, config: {{events: "{ev}", label: stuck, hang_on: initialize}}}}
        good: {{type: "{RECORDER}", enabled: true, config: {{events: "{ev}", label: good}}}}
        """,
        'a: {run: "flowc_demo.steps:echo"}',
    )
    ir = compile_flow(f)
    assert [p.health_timeout for p in ir.plugins] == [2.0, 2.0, None]
    assert ir.to_data()["plugins"]["slow"]["health_timeout"] == 2.0
    assert "health_timeout" not in ir.to_data()["plugins"]["good"]
    try:
        res = CliRunner().invoke(cli, ["plugins", "list", str(f), "--health"])
        assert res.exit_code == 1, res.output
        rows = {ln.split()[0]: ln for ln in res.output.splitlines()}
        assert rows["slow"].split()[2:4] == ["mlops", "UNHEALTHY"]
        assert '"status": "timeout"' in rows["slow"]
        assert "health_check() gave no answer within 2s (health_timeout)" in rows["slow"]
        assert rows["stuck"].split()[2:4] == ["mlops", "UNHEALTHY"]
        assert "initialize() gave no answer within 2s" in rows["stuck"]
        assert rows["good"].split()[2:4] == ["mlops", "healthy"]
        # the hung checks did not hold the others up: only the good plugin has finished
        assert short(events(ev)) == ["slow.initialize", "good.initialize", "good.shutdown"]
    finally:
        fx.RELEASE.set()
    # released, the abandoned checks finish in their threads and still shut their plugins down
    wait_for(lambda: len(events(ev)) == 6, "the released plugins to shut down")
    assert sorted(short(events(ev))[3:]) == ["slow.shutdown", "stuck.initialize", "stuck.shutdown"]

    # the default, and a plugin instance checked on its own
    assert pl.DEFAULT_HEALTH_TIMEOUT == 5.0 and pl.health_timeout_of({"type": "x"}) == 5.0
    fx.RELEASE.clear()
    try:
        hung = fx.RecorderPlugin(events=str(ev), hang_on="health")
        assert pl.check_health(hung, timeout=0.2) == (
            False,
            {
                "status": "timeout",
                "message": "health_check() gave no answer within 0.2s (health_timeout)",
                "timeout": 0.2,
            },
        )
        hung.health_timeout = 0.1
        assert pl.check_health(hung)[1]["timeout"] == 0.1
    finally:
        fx.RELEASE.set()
    assert pl.check_health(fx.RecorderPlugin(events=str(ev), fail_on="health"))[0] is False
    assert pl.check_health(fx.RecorderPlugin(events=str(ev))) == (
        True,
        {"status": "ok", "label": "rec"},
    )


def test_health_timeout_is_checked_at_compile_time(tmp_path: Path) -> None:
    f = write_flow(
        tmp_path,
        f"""
        a: {{type: "{RECORDER}", enabled: true, health_timeout: soon, config: {{events: e}}}}
        b: {{type: "{RECORDER}", enabled: true, health_timeout: 0, config: {{events: e}}}}
        c: {{type: "{RECORDER}", enabled: true, health_timeout: 2m, config: {{events: e}}}}
        """,
        'a: {run: "flowc_demo.steps:echo"}',
    )
    with pytest.raises(FlowcError) as ei:
        compile_flow(f)
    got = [(d.loc.line, d.loc.col, d.message) for d in ei.value.diagnostics]
    assert got == [
        (4, 85, "invalid duration 'soon'"),
        (5, 85, "health_timeout must be more than 0"),
    ]
    f.write_text(f.read_text().replace("soon", "1s").replace("health_timeout: 0,", ""))
    assert [p.health_timeout for p in compile_flow(f).plugins] == [1.0, None, 120.0]


def flowc_ok(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """``python -m flowc ARGS`` in a fresh process; its stdout (exit 0 asserted)."""
    res = subprocess.run(
        [sys.executable, "-m", "flowc", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def health_row(table: str, name: str) -> str:
    (row,) = [ln for ln in table.splitlines() if ln.split()[:1] == [name]]
    return row


def test_health_imports_a_plugin_beside_the_flow_as_run_does(tmp_path: Path) -> None:
    """A plugin module in the flow's folder, the commands started from another folder: both
    `flowc run` and `flowc plugins list --health` import it."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "beside_plugin.py").write_text(textwrap.dedent("""
        import os

        from flowc.runtime.plugins import MLOpsPlugin


        class Beside(MLOpsPlugin):
            def __init__(self, events: str) -> None:
                super().__init__()
                self.events = events

            def initialize(self) -> None:
                with open(self.events, "a") as fh:
                    fh.write(f"initialize {os.getpid()}\\n")

            def health_check(self):
                return True, {"status": "ok", "module": __name__}
        """))
    (project / "beside_steps.py").write_text(
        "def use(ctx):\n    return type(ctx.plugins.mlops).__name__\n"
    )
    ev = tmp_path / "events.txt"
    flow = write_flow(
        project,
        f'mlops: {{type: "beside_plugin:Beside", enabled: true, config: {{events: "{ev}"}}}}',
        'a: {run: "beside_steps:use", outputs: [cls]}',
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    flowc_ok("run", str(flow), cwd=elsewhere)
    row = health_row(flowc_ok("plugins", "list", str(flow), "--health", cwd=elsewhere), "mlops")
    assert row.split()[2:4] == ["mlops", "healthy"]
    assert '"module": "beside_plugin"' in row
    assert len(ev.read_text().splitlines()) == 2  # initialized by the run, then by the check


def test_experimenthub_registers_instances_by_type(tmp_path: Path) -> None:
    import flowc_stackfix.plugins as fx

    ev = tmp_path / "events.jsonl"
    hub = pl.ExperimentHub()
    first = fx.RecorderPlugin(events=str(ev), label="first")
    hub.register_plugin(first)
    assert hub.get_plugin("mlops") is first and hub.get_plugin("datastream") is None
    assert hub.plugins == {"mlops": first}
    # another plugin of the type replaces it (and the replaced one is shut down)
    second = fx.RecorderPlugin(events=str(ev), label="second")
    hub.register_plugin(second)
    assert hub.get_plugin("mlops") is second
    # one that fails to initialize leaves the hub as it was
    broken = fx.RecorderPlugin(events=str(ev), label="broken", fail_on="initialize")
    with pytest.raises(RuntimeError, match="broken fails in initialize"):
        hub.register_plugin(broken)
    assert hub.get_plugin("mlops") is second
    with pytest.raises(pl.PluginError, match="object has no plugin_type"):
        hub.register_plugin(object())
    assert hub.check_plugin_health() == {
        "mlops": {"healthy": True, "details": {"status": "ok", "label": "second"}}
    }
    fx.RELEASE.clear()
    try:
        second.hang_on, second.health_timeout = "health", 0.2
        (report,) = hub.check_plugin_health().values()
        assert report["healthy"] is False and report["details"]["status"] == "timeout"
    finally:
        fx.RELEASE.set()
    hub.shutdown()
    assert hub.plugins == {}
    assert short(events(ev)) == [
        "first.initialize",
        "second.initialize",
        "first.shutdown",
        "broken.initialize",
        "second.shutdown",
    ]

    # ExperimentHub's plugins: configuration; a spec without enabled: true is not even built
    config = {
        "mlops": {"enabled": True, "type": RECORDER, "config": {"events": str(ev), "label": "c"}},
        "taskqueue": {"type": "celery", "config": {}},
        "datastream": {"enabled": False, "type": "rabbitmq"},
    }
    with pl.ExperimentHub(config) as configured:
        assert list(configured.plugins) == ["mlops"]
        assert configured.get_plugin("mlops").label == "c"
    assert short(events(ev))[-2:] == ["c.initialize", "c.shutdown"]
    with pytest.raises(pl.PluginError, match="plugin 'x': unknown plugin type 'recordr'"):
        pl.ExperimentHub({"x": {"enabled": True, "type": "recordr"}})

    # ctx.plugins answers the hub's question too
    ns = pl.Plugins({"tracker": first})
    assert ns.get_plugin("mlops") is first and ns.get_plugin("taskqueue") is None


EXPERIMENTHUB = Path(__file__).parent / "fixtures" / "experimenthub"


def test_the_seeds_experimenthub_plugin_runs_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seed 001's custom MLOps plugin and its registration, verbatim, against flowc (through a
    ``framework`` package of re-exports), then as a flow's plugin."""
    (tmp_path / "custom_mlops.py").write_text((EXPERIMENTHUB / "custom_mlops.py.txt").read_text())
    monkeypatch.syspath_prepend(str(EXPERIMENTHUB))
    monkeypatch.syspath_prepend(str(tmp_path))
    import custom_mlops  # type: ignore[import-not-found]

    try:
        assert isinstance(custom_mlops.hub, pl.ExperimentHub)
        assert custom_mlops.hub.get_plugin("mlops") is custom_mlops.custom_plugin
        assert isinstance(custom_mlops.custom_plugin, pl.MLOpsPlugin | pl.Plugin)
        assert custom_mlops.hub.check_plugin_health() == {
            "mlops": {"healthy": True, "details": {"status": "connected", "custom_param": "value"}}
        }
    finally:
        sys.modules.pop("custom_mlops", None)

    (tmp_path / "seed_steps.py").write_text(
        "def use(ctx):\n    return ctx.plugins.get_plugin('mlops').custom_param\n"
    )
    flow = write_flow(
        tmp_path,
        'mlops: {type: "custom_mlops:CustomMLOpsPlugin", enabled: true, config: {custom_param: value}}',
        'a: {run: "seed_steps:use", outputs: [param]}',
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(EXPERIMENTHUB), os.environ["PYTHONPATH"]]),
    }
    flowc_ok("run", str(flow), "--root", str(tmp_path / ".flowc"), cwd=tmp_path, env=env)
    result = run_plan(compile_flow(flow).to_data(), root=str(tmp_path / ".in_process"))
    assert result.ok, result.error
    assert result.outputs["a"]["param"] == "value"
    listed = flowc_ok("plugins", "list", str(flow), "--health", cwd=tmp_path, env=env)
    row = health_row(listed, "mlops")
    assert row.split()[2:4] == ["mlops", "healthy"]
    assert '{"custom_param": "value", "status": "connected"}' in row


def test_health_imports_the_client_library_before_the_clock_starts() -> None:
    """`health_imports` are imported outside the timed probe (a fresh process may need seconds
    for mlflow); a missing one is reported, naming it."""
    import flowc.runtime.plugins_builtin.mlflow_plugin as mp

    assert mp.MLflowPlugin.health_imports == ("mlflow.tracking",)

    class NeedsMissing(pl.MLOpsPlugin):
        health_imports = ("no_such_client_lib_zz",)

    reg = pl.PluginRegistry(entry_point_group=None)
    reg.register(NeedsMissing, "needs_missing")
    row = pl.health({"x": {"type": "needs_missing", "enabled": True}}, reg)["x"]
    assert row["healthy"] is False
    assert row["details"]["message"].startswith(
        "PluginError: plugin type 'needs_missing' needs no_such_client_lib_zz: No module named"
    )
