"""Front-end passes: precedence, defaults cascade, param coercion, env resolution, edges, order."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowc.compiler.api import compile_flow, load_text
from flowc.compiler.errors import FlowcError
from flowc.compiler.ir import Format, Lit, Ref
from flowc.compiler.passes import pass_modules
from flowc.compiler.passes._util import parse_duration
from flowc.compiler.passes.params import coerce

FLOW = """flowc: 1
name: demo
params:
  code: {type: str, default: "1"}
  n: {type: int, default: 1, min: 0, max: 10}
  rate: {type: float, default: 0.5}
  on: {type: bool, default: false}
  items: {type: list, default: [a]}
  cfg: {type: dict, default: {}}
  mode: {type: str, enum: [fast, slow], default: fast}
defaults:
  image: base:1
  retries: 1
  retry_delay: 10s
  resources: {cpu: "1", memory: 1Gi}
  env: {A: a, B: b}
environments:
  prod:
    params: {n: 5}
    defaults: {retries: 4, resources: {memory: 8Gi}, env: {B: prod}}
steps:
  first: {run: m:f, outputs: [x]}
  second:
    run: m:g
    with: {v: "${steps.first.outputs.x}", n: "${params.n}", s: "n=${params.n}"}
    resources: {cpu: 2}
    env: {C: "${env.FLOWC_T_VAR:-dflt}", D: 3}
    retries: 0
"""


def test_pass_order_is_fixed_and_documented() -> None:
    names = [m.__name__.rsplit(".", 1)[1] for m in pass_modules()]
    mine = [
        "header",
        "environment",
        "secrets",
        "params",
        "schedule",
        "steps",
        "channels",
        "stack",
        "integrations",
        "envrefs",
        "refs",
        "graph",
    ]
    assert [n for n in names if n in mine] == mine
    doc = (Path(__file__).parent.parent / "docs" / "passes.md").read_text()
    for mod in pass_modules():
        row = f"| {mod.ORDER} | {mod.__name__.rsplit('.', 1)[1]} |"
        assert row in doc, f"pass row '{row}' missing from docs/passes.md"


def test_defaults_cascade_key_wise() -> None:
    ir = load_text(FLOW, environ={})
    first, second = ir.step("first"), ir.step("second")
    assert first.image == "base:1" and first.retries == 1 and first.retry_delay == 10.0
    assert second.retries == 0  # the step wins, even with 0
    assert second.resources.cpu == "2" and second.resources.memory == "1Gi"
    env = dict(second.env)
    assert env == {"A": Lit("a"), "B": Lit("b"), "C": Lit("dflt"), "D": Lit("3")}


def test_environment_overlay_then_cli_wins() -> None:
    ir = load_text(FLOW, environment="prod", environ={"FLOWC_T_VAR": "set"})
    second = ir.step("second")
    assert ir.param("n").default == 5 and ir.environment == "prod"
    assert second.resources.memory == "8Gi" and second.resources.cpu == "2"
    assert dict(second.env)["B"] == Lit("prod") and dict(second.env)["C"] == Lit("set")
    assert ir.step("first").retries == 4
    ir = load_text(FLOW, environment="prod", params={"n": "7"}, environ={})
    assert ir.param("n").default == 7
    ir = load_text(FLOW, environment="prod", sets={"environments.prod.params.n": "9"}, environ={})
    assert ir.param("n").default == 9


@pytest.mark.parametrize(
    "name,text,value",
    [
        ("code", "007", "007"),
        ("code", "true", "true"),
        ("n", "3", 3),
        ("rate", "2", 2.0),
        ("rate", "1e-3", 0.001),
        ("on", "true", True),
        ("items", '["x", 1]', ["x", 1]),
        ("cfg", '{"a": {"b": null}}', {"a": {"b": None}}),
        ("mode", "slow", "slow"),
    ],
)
def test_cli_params_are_coerced_to_the_declared_type(name: str, text: str, value: object) -> None:
    ir = load_text(FLOW, params={name: text}, environ={})
    got = ir.param(name).default
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(
    "name,text,message",
    [
        ("n", "3.5", "flowc: error: --param n=3.5: expected an integer for param 'n' (int)"),
        ("n", "11", "flowc: error: --param value 11 for param 'n' is above max 10"),
        ("on", "yes", "flowc: error: --param on=yes: expected true or false for param 'on' (bool)"),
        (
            "items",
            "a,b",
            "flowc: error: --param items=a,b: expected a list for param 'items' (list)",
        ),
        ("cfg", "[]", "flowc: error: --param cfg=[]: expected a mapping for param 'cfg' (dict)"),
        (
            "rate",
            "nan",
            "flowc: error: --param rate=nan: expected a number for param 'rate' (float)",
        ),
        (
            "mode",
            "medium",
            "flowc: error: --param value 'medium' for param 'mode' is not one of ['fast', 'slow']",
        ),
    ],
)
def test_bad_cli_params(name: str, text: str, message: str) -> None:
    with pytest.raises(FlowcError) as info:
        load_text(FLOW, params={name: text}, environ={})
    assert info.value.render().splitlines()[0] == message


def test_coerce_edge_cases() -> None:
    assert coerce("int", "0x10") == (False, None)
    assert coerce("int", "-4") == (True, -4)
    assert coerce("list", "null") == (False, None)


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        (45, 45.0),
        (2.5, 2.5),
        ("1.5h", 5400.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "1w", "", "-1s", "s", "1h 30m", True, -3, None])
def test_bad_durations(text: object) -> None:
    assert parse_duration(text) is None


def test_expressions_and_edges() -> None:
    ir = load_text(FLOW, environ={})
    second = ir.step("second")
    with_ = dict(second.with_)
    assert with_["v"] == Ref("steps", ("first", "outputs", "x"))
    assert with_["n"] == Ref("params", ("n",))
    assert with_["s"] == Format(("n=", Ref("params", ("n",))))
    assert second.upstream == ("first",)
    assert [(e.src, e.dst, e.kind, e.output) for e in ir.edges] == [
        ("first", "second", "data", "x")
    ]


def test_topological_order_ties_by_written_order() -> None:
    text = """flowc: 1
name: t
steps:
  z: {run: m:f, after: [b]}
  a: {run: m:f}
  b: {run: m:f}
  c: {run: m:f, after: [a]}
"""
    ir = load_text(text)
    assert [s.name for s in ir.steps] == ["a", "b", "z", "c"]


def test_env_only_resolved_for_the_active_stack() -> None:
    text = """flowc: 1
name: t
stacks:
  local: {artifact_store: {type: local, path: .flowc/artifacts}}
  cloud: {orchestrator: {type: vertex, project: "${env.FLOWC_UNSET_PROJECT}", region: us-central1}}
environments:
  dev: {stack: local}
  prod: {stack: cloud}
steps:
  a: {run: m:f}
"""
    assert load_text(text, environment="dev", environ={}).stack.name == "local"
    with pytest.raises(FlowcError, match="FLOWC_UNSET_PROJECT"):
        load_text(text, environment="prod", environ={})
    ir = load_text(text, stack="cloud", environ={"FLOWC_UNSET_PROJECT": "proj-one-123"})
    assert ir.stack is not None and ir.stack.orchestrator.setting("project") == "proj-one-123"


def test_env_in_image_and_params_not_allowed_there() -> None:
    text = 'flowc: 1\nname: t\ndefaults: {image: "${env.REG:-gcr.io/a}/img:1"}\nsteps:\n  a: {run: m:f}\n'
    assert load_text(text, environ={}).step("a").image == "gcr.io/a/img:1"
    assert load_text(text, environ={"REG": "r"}).step("a").image == "r/img:1"
    bad = 'flowc: 1\nname: t\nparams: {i: {type: str}}\nsteps:\n  a: {run: m:f, image: "${params.i}"}\n'
    with pytest.raises(FlowcError) as info:
        load_text(bad, environ={})
    assert info.value.render().splitlines()[0] == (
        "flow.yaml:5:25: error: only ${env.X} may be used in an image, not ${params.i}"
    )


def test_when_and_item_scoping() -> None:
    text = """flowc: 1
name: t
params: {xs: {type: list, default: [1, 2]}}
steps:
  a: {run: m:f, outputs: [ok]}
  b:
    run: m:g
    foreach: "${params.xs}"
    with: {i: "${item}"}
    when: "${steps.a.outputs.ok} and ${item} != 2"
"""
    ir = load_text(text)
    assert [(e.kind, e.output) for e in ir.edges] == [("when", "ok")]
    assert ir.step("b").upstream == ("a",)


def test_secrets_collected_per_step() -> None:
    text = """flowc: 1
name: t
secrets: {tok: {env: TOK}, pw: {env: PW}}
steps:
  a: {run: m:f, with: {h: "Bearer ${secrets.tok}"}, env: {P: "${secrets.pw}"}}
"""
    ir = load_text(text)
    assert ir.step("a").secrets == ("pw", "tok")
    assert ir.secret("tok").env == "TOK"


def test_source_path_outside_a_repository(tmp_path: Path) -> None:
    f = tmp_path / "flow.yaml"
    f.write_text("flowc: 1\nname: t\nsteps:\n  a: {run: m:f}\n")
    ir = compile_flow(f)
    assert ir.source.path == "flow.yaml" and len(ir.source.sha256) == 64
    (tmp_path / ".git").mkdir()
    (tmp_path / "sub").mkdir()
    g = tmp_path / "sub" / "flow.yaml"
    g.write_bytes(f.read_bytes())
    assert compile_flow(g).source.path == "sub/flow.yaml"


def test_all_errors_of_a_file_are_reported_sorted() -> None:
    text = """flowc: 1
name: t
params: {p: {type: int, default: x}}
schedule: {cron: "bad"}
steps:
  b: {run: m:f, timeout: soon, with: {v: "${params.q}"}}
  a: {run: m:f, with: {s: "${secrets.nope}"}}
"""
    with pytest.raises(FlowcError) as info:
        load_text(text)
    lines = [ln for ln in info.value.render().splitlines() if ": error: " in ln]
    assert [ln.split(": error: ")[0] for ln in lines] == [
        "flow.yaml:3:34",
        "flow.yaml:4:18",
        "flow.yaml:6:26",
        "flow.yaml:6:43",
        "flow.yaml:7:28",
    ]


HOSTILE = [
    "'\"\"\"'''",
    "back\\slash\\n",
    "line\nbreak",
    "nul\x00byte",
    "{{ ds }} {% if %}",
    "$(touch /tmp/x) `id` ; rm -rf /",
    "%(x)s %s",
    "\u202eRTL 😀",
    "${params.n}",
    "$${",
    "x" * 10_000,
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_str_params_and_sets_take_hostile_values_verbatim(value: str) -> None:
    ir = load_text(FLOW, params={"code": value}, environ={})
    assert ir.param("code").default == value
    # --set reads its value as YAML: a plain string comes through unchanged, anything else is
    # either a value of another type (a schema error, located at the key) or the text itself
    try:
        ir = load_text(FLOW, sets={"description": value}, environ={})
    except FlowcError as e:
        assert "'description' must be a string" in e.render()
    else:
        assert ir.description is not None


def test_hand_written_steps_may_use_function_module_steps(tmp_path: Path) -> None:
    f = tmp_path / "flow.yaml"
    f.write_text(
        "flowc: 1\nname: features\nfunctions: [flowc_spec_features]\nsteps:\n"
        "  add_int_col: {with: {col_name: foo, values: bar}}\n"
        '  report: {run: m:r, with: {df: "${steps.final_df.outputs.final_df}"}, after: [base_df]}\n'
    )
    ir = compile_flow(f)
    assert ir.step("report").upstream == ("base_df", "final_df")
    assert [s.name for s in ir.steps][-1] == "report"


def test_set_paths() -> None:
    ir = load_text(
        FLOW,
        sets={
            "steps.first.outputs.0": "x2",
            "steps.second.with.v": "${steps.first.outputs.x2}",
            "tags": "[a, b]",
        },
        environ={},
    )
    assert ir.step("first").outputs == ("x2",) and ir.tags == ("a", "b")
    with pytest.raises(FlowcError, match="is not a mapping"):
        load_text(FLOW, sets={"name.x": "1"}, environ={})
    with pytest.raises(FlowcError, match="unknown key 'layers'"):
        load_text(FLOW + "layers: {}\n", environ={})


def test_param_values_are_data_not_templates() -> None:
    text = """flowc: 1
name: t
params:
  a: {type: str, default: "${env.HOME} $${x} $HOME"}
environments:
  e: {params: {a: "${params.b}"}}
steps:
  s: {run: m:f}
"""
    assert load_text(text, environ={}).param("a").default == "${env.HOME} $${x} $HOME"
    assert load_text(text, environment="e", environ={}).param("a").default == "${params.b}"


@pytest.mark.parametrize(
    "schedule,message",
    [
        (
            "{cron: '0 3 * * 1', start: 2026-02-01, end: 2026-01-01}",
            "flow.yaml:3:55: error: schedule end 2026-01-01 is not after start 2026-02-01",
        ),
        ("{every: 0s}", "flow.yaml:3:19: error: invalid duration '0s'"),
        ("{at: tomorrow}", "flow.yaml:3:16: error: invalid date-time 'tomorrow'"),
        ("{cron: '@daily'}", "flow.yaml:3:18: error: invalid cron expression '@daily'"),
        (
            "{cron: '0 3 * * 1 2026'}",
            "flow.yaml:3:18: error: invalid cron expression '0 3 * * 1 2026'",
        ),
        (
            "{timezone: UTC}",
            "flow.yaml:3:1: error: schedule needs exactly one of 'cron', 'every', 'at'",
        ),
        (
            "{cron: '0 3 * * 1', timezone: ../etc/passwd}",
            "flow.yaml:3:41: error: unknown timezone '../etc/passwd'",
        ),
    ],
)
def test_schedule_errors(schedule: str, message: str) -> None:
    with pytest.raises(FlowcError) as info:
        load_text(f"flowc: 1\nname: t\nschedule: {schedule}\nsteps:\n  a: {{run: m:f}}\n")
    assert info.value.render().splitlines()[0] == message


def test_schedule_kinds() -> None:
    base = "flowc: 1\nname: t\nschedule: {}\nsteps:\n  a: {{run: m:f}}\n"
    every = load_text(base.format("{every: 15m, catchup: true}")).schedule
    assert every is not None and every.kind == "every" and every.every_seconds == 900.0
    assert every.catchup is True and every.timezone == "UTC"
    at = load_text(base.format("{at: 2027-01-01T00:00:00Z}")).schedule
    assert at is not None and at.kind == "at" and at.at == "2027-01-01T00:00:00Z"


def test_a_crashing_pass_is_reported_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    import flowc.compiler.passes as passes

    boom = types.SimpleNamespace(__name__="flowc.compiler.passes.boom", ORDER=99)

    def run(ctx: object) -> None:
        raise KeyError("oops")

    boom.run = run
    real = passes.pass_modules()
    monkeypatch.setattr(passes, "pass_modules", lambda: (*real, boom))
    monkeypatch.delenv("FLOWC_DEBUG", raising=False)
    with pytest.raises(FlowcError) as info:
        load_text("flowc: 1\nname: t\nsteps:\n  a: {run: m:f}\n")
    assert info.value.render().splitlines()[0] == (
        "flow.yaml:1:1: error: internal error in compiler pass 'boom': KeyError: 'oops'"
    )
    monkeypatch.setenv("FLOWC_DEBUG", "1")
    with pytest.raises(KeyError):
        load_text("flowc: 1\nname: t\nsteps:\n  a: {run: m:f}\n")
