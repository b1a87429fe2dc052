"""Control flow through ``flowc run`` on flow files (the front end compiles, the shared executor
runs): the issue's "must show" list for the local runtime, end to end. The executor's rules on
their own are in tests/test_control_flow_runtime.py."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from click.testing import CliRunner

from flowc.compiler.cli import cli

FLOW = """\
flowc: 1
name: cf_flow
steps:
  probe:
    command: [{python}, -c, "raise SystemExit(99)"]
    skip_on_exit_code: [99]
  down:
    run: flowc_cf.steps:echo
    with: {{value: 1}}
    after: [probe]
  join:
    run: flowc_cf.steps:echo
    with: {{value: joined}}
    after: [probe]
    trigger: all_done
    outputs: [v]
  per_item:
    foreach: [0, 1]
    steps:
      first:
        run: flowc_cf.steps:first
        with: {{item: "${{item}}", log: "{log}"}}
        outputs: [v]
      second:
        run: flowc_cf.steps:second
        with: {{value: "${{steps.first.outputs.v}}", item: "${{item}}", log: "{log}"}}
        outputs: [v]
    outputs: {{score: "${{steps.second.outputs.v}}"}}
  grid:
    run: flowc_cf.steps:echo
    foreach: {{lr: [0.1, 0.01], depth: [3, 5]}}
    with: {{value: "${{item.lr}}/${{item.depth}}"}}
    outputs: [v]
  work:
    run: flowc_cf.steps:fail_unless
    with: {{flag: "{flag}", value: 7}}
    outputs: [v]
finally:
  report:
    run: flowc_cf.steps:echo
    with:
      value: {{status: "${{run.status}}", failed: "${{run.failed_steps}}"}}
      log: "{log}"
      name: report
outputs:
  scores: "${{steps.per_item.outputs.score}}"
  first_grid: "${{steps.grid.outputs.v[0]}}"
  joined: "${{steps.join.outputs.v}}"
"""


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.output


def _logged(log: Path, name: str) -> list:
    path = log / f"{name}.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_control_flow_through_flowc_run_runs_show_and_resume(tmp_path: Path) -> None:
    log, flag, root = tmp_path / "log", tmp_path / "flag", tmp_path / ".flowc"
    log.mkdir()
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW.format(python=sys.executable, log=log, flag=flag), encoding="utf-8")
    code, out = _run("run", str(flow), "--root", str(root), "--max-workers", "2")
    assert code == 1, out  # `work` failed: the run fails after the finally step ran
    assert "probe: skipped" in out and "down: skipped" in out and "join: success" in out
    assert "report: success" in out
    assert _logged(log, "report") == [{"status": "failed", "failed": ["work"]}]
    assert _logged(log, "second")[0] == 0  # item-wise: item 1's first member waited for it
    assert "flow outputs:" in out
    assert "  scores = [1, 11]" in out
    assert '  first_grid = "0.1/3"' in out and '  joined = "joined"' in out
    found = re.search(r"^run (\S+) failed in ", out, re.M)
    assert found, out
    run_id = found.group(1)
    code, shown = _run("runs", "show", run_id, "--root", str(root), "--json")
    assert code == 0, shown
    data = json.loads(shown)
    assert data["run"]["outputs"] == {"scores": [1, 11], "first_grid": "0.1/3", "joined": "joined"}
    states = {s["step"]: s["status"] for s in data["steps"]}
    assert states["per_item.second"] == "success" and states["grid"] == "success"
    assert states["probe"] == "skipped" and states["work"] == "failed"
    code, shown = _run("runs", "show", run_id, "--root", str(root))
    assert "flow outputs:" in shown and "scores = [1, 11]" in shown
    # resume: `work` now succeeds; the finally step succeeded in this run: it does not run again
    flag.write_text("x")
    code, out = _run("run", str(flow), "--root", str(root), "--resume", run_id)
    assert code == 0, out
    assert len(_logged(log, "report")) == 1
    assert "  scores = [1, 11]" in out


GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def test_the_golden_control_flow_cases_run_locally(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # cf_triggers' probe looks for data.csv here: absent, skipped
    root = str(tmp_path / ".flowc")
    code, out = _run("run", str(GOLDEN / "cf_outputs" / "flow.yaml"), "--root", root)
    assert code == 0, out
    assert 'flow outputs:\n  rows = 3\n  first = {"id": 0, "src": "data.csv"}' in out
    assert "count.n" not in out  # read by a flow output: not listed as an unread step output
    code, out = _run("run", str(GOLDEN / "cf_triggers" / "flow.yaml"), "--root", root)
    assert code == 0, out
    assert "probe: skipped" in out and "branch: skipped" in out and "join: success" in out
    code, out = _run("run", str(GOLDEN / "cf_finally" / "flow.yaml"), "--root", root)
    assert code == 0, out
    assert out.index("count: success") < out.index("report: running")
    code, out = _run("run", str(GOLDEN / "cf_subflow" / "flow.yaml"), "--root", root)
    assert code == 0 and "show.value = 19" in out, out
    code, out = _run("run", str(GOLDEN / "cf_groups" / "flow.yaml"), "--root", root)
    assert code == 0 and 'publish.url = "published 2"' in out, out
