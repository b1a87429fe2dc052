"""Real services the plugin tests start themselves: a RabbitMQ broker (Debian's
``rabbitmq-server``) and a Celery worker. Each runs in its own session on free ports under a temp
folder and is stopped by pid (its process group) when the test module ends.

``FLOWC_TEST_AMQP_URL`` (set by scripts/test.sh when it started a broker for the whole suite)
makes the RabbitMQ fixture reuse that broker instead of starting one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(
        f"server not listening on {port} after {timeout}s:\n{log.read_text()[-3000:]}"
    )


def stop(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """TERM the process group we started, then KILL what is left."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


@contextmanager
def rabbitmq(base: Path) -> Iterator[str]:
    """A RabbitMQ broker on a free port; yields its ``amqp://`` URL."""
    given = os.environ.get("FLOWC_TEST_AMQP_URL")
    if given:
        yield given
        return
    if not Path(RABBITMQ_SERVER).exists():
        raise RuntimeError(
            f"{RABBITMQ_SERVER} not found: install Debian's rabbitmq-server (scripts/test.sh does)"
        )
    port, dist, epmd_port = free_port(), free_port(), free_port()
    base.mkdir(parents=True, exist_ok=True)
    log = base / "server.log"
    # a private epmd (Erlang's port mapper) in the foreground, so nothing outlives the test
    epmd = subprocess.Popen(
        ["epmd", "-port", str(epmd_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    env = {
        **os.environ,
        "ERL_EPMD_PORT": str(epmd_port),
        "HOME": str(base),  # the Erlang cookie lives here
        "RABBITMQ_NODENAME": f"flowc{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [RABBITMQ_SERVER],
            cwd=base,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_port(port, proc, 90, log)
        yield f"amqp://guest:guest@127.0.0.1:{port}/%2F"
    finally:
        stop(proc)
        stop(epmd, grace=5)


@contextmanager
def celery_worker(base: Path, broker: str, backend: str) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A flowc.runtime.plugins_builtin.celery_app worker`` (solo pool), ready."""
    base.mkdir(parents=True, exist_ok=True)
    log = base / "worker.log"
    env = {
        **os.environ,
        "FLOWC_CELERY_BROKER": broker,
        "FLOWC_CELERY_BACKEND": backend,
        "C_FORCE_ROOT": "1",
    }
    cmd = [sys.executable, "-m", "celery", "-A", "flowc.runtime.plugins_builtin.celery_app"]
    cmd += ["worker", "--pool", "solo", "--concurrency", "1", "--loglevel", "INFO"]
    cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 90
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None:
                raise RuntimeError(f"celery worker exited:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"celery worker not ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield proc
    finally:
        stop(proc)


@contextmanager
def gcs_emulator(base: Path, bucket: str) -> Iterator[str]:
    """A local GCS (the ``gcp-storage-emulator`` package, in memory) with ``bucket`` created;
    yields the value for ``STORAGE_EMULATOR_HOST``."""
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = base / "gcs.log"
    exe = Path(sys.executable).parent / "gcp-storage-emulator"
    cmd = [str(exe), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--default-bucket", bucket],
            cwd=base,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_port(port, proc, 60, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc, grace=5)
