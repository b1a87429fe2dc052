"""A small fake Kubernetes API server for the k8s driver and deployer tests (no kube-apiserver
can be installed here).

It speaks the real REST paths the ``kubernetes`` Python client uses for the objects flowc
touches (ConfigMap, Secret, ServiceAccount, Pod + log, Role, RoleBinding, Job, CronJob,
Deployment), keeps state in memory, and:

- validates every object it receives against the strict schemas of ``kubernetes-validate``
  (every error, for 1.30 and the newest version) and answers 422 on any error (they are also
  collected in ``rejected`` so a test can assert there were none);
- runs each created Job's container command locally as a subprocess (``python`` is this
  interpreter) to decide its status: pods with downward-API env (``fieldRef``), ``secretKeyRef``
  env from stored Secrets, ``$(VAR)`` expansion in command/args, ConfigMap volumes (also several
  ConfigMaps projected into one) and PVC volumes materialised as local folders, ``backoffLimit``
  retries (one new pod per attempt), Indexed completions (``parallelism`` at once),
  ``activeDeadlineSeconds`` per pod;
- serves pod logs, garbage-collects dependents through ``ownerReferences`` on delete;
- can start a CronJob's job template on demand (``trigger_cronjob``).

Bound to 127.0.0.1 on a free port. Not a general API server: only what flowc uses.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.k8s_schema import all_schema_errors

KINDS: dict[str, tuple[str, str]] = {  # plural -> (apiVersion, kind)
    "configmaps": ("v1", "ConfigMap"),
    "secrets": ("v1", "Secret"),
    "serviceaccounts": ("v1", "ServiceAccount"),
    "pods": ("v1", "Pod"),
    "roles": ("rbac.authorization.k8s.io/v1", "Role"),
    "rolebindings": ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    "jobs": ("batch/v1", "Job"),
    "cronjobs": ("batch/v1", "CronJob"),
    "deployments": ("apps/v1", "Deployment"),
}
_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/(?P<ver>[^/]+))/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _matches(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k) != v.lstrip("="):
                return False
        elif labels.get(term) is None:
            return False
    return True


class FakeCluster:
    """The state and the HTTP server. Use as a context manager."""

    def __init__(self, workdir: Path, validate: bool = True):
        self.workdir = Path(workdir)
        self.validate = validate
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.rejected: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.inject: dict[tuple[str, str], int] = {}  # (method, plural) -> 503s still to answer
        self.lock = threading.RLock()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.threads: list[threading.Thread] = []
        self._rv = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.kubeconfig = self.workdir / ".fake-k8s" / "kubeconfig"
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                    "contexts": [
                        {
                            "name": "fake",
                            "context": {"cluster": "fake", "user": "fake", "namespace": "default"},
                        }
                    ],
                    "current-context": "fake",
                }
            )
        )
        self._serve = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeCluster:
        self._serve.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        with self.lock:
            procs = list(self.procs.values())
        for p in procs:
            if p.poll() is None:
                p.kill()
        self.server.shutdown()
        self.server.server_close()
        for t in self.threads:
            t.join(timeout=30)

    # -- state ----------------------------------------------------------------------------------

    def get(self, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.get((plural, ns, name))
            return copy.deepcopy(obj) if obj else None

    def items(self, plural: str, ns: str | None = None, selector: str | None = None) -> list[dict]:
        with self.lock:
            return [
                copy.deepcopy(o)
                for (p, n, _), o in sorted(self.objects.items())
                if p == plural
                and (ns is None or n == ns)
                and _matches(o["metadata"].get("labels") or {}, selector)
            ]

    def all_objects(self) -> list[tuple[str, str, str]]:
        with self.lock:
            return sorted(self.objects)

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _store(self, plural: str, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
        md = obj.setdefault("metadata", {})
        md["namespace"] = ns
        md["uid"] = str(uuid.uuid4())
        md["resourceVersion"] = self._next_rv()
        md["creationTimestamp"] = _now()
        with self.lock:
            self.objects[(plural, ns, md["name"])] = obj
        return obj

    def create(self, plural: str, ns: str, obj: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        api_version, kind = KINDS[plural]
        if obj.get("kind") != kind or obj.get("apiVersion") != api_version:
            return 400, _status(400, "BadRequest", f"expected {api_version} {kind}")
        md = obj.get("metadata") or {}
        if md.get("namespace") and md["namespace"] != ns:
            return 400, _status(400, "BadRequest", "namespace of the object and the URL differ")
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + uuid.uuid4().hex[:5]
        if self.validate:
            errors = all_schema_errors(obj)
            if errors:
                self.rejected.extend(errors)
                return 422, _status(422, "Invalid", "; ".join(errors))
        with self.lock:
            if (plural, ns, md.get("name")) in self.objects:
                return 409, _status(
                    409, "AlreadyExists", f'{plural} "{md.get("name")}" already exists'
                )
            stored = self._store(plural, ns, copy.deepcopy(obj))
        if plural == "jobs":
            stored["status"] = {}
            t = threading.Thread(
                target=self._run_job, args=(ns, md["name"], stored["metadata"]["uid"]), daemon=True
            )
            self.threads.append(t)
            t.start()
        return 201, copy.deepcopy(stored)

    def delete(self, plural: str, ns: str, name: str, policy: str | None) -> tuple[int, dict]:
        with self.lock:
            obj = self.objects.pop((plural, ns, name), None)
            if obj is None:
                return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
            if policy != "Orphan":
                self._collect(obj["metadata"]["uid"])
        proc = self.procs.get(obj["metadata"]["uid"])
        if proc is not None and proc.poll() is None:
            proc.kill()
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}

    def _collect(self, uid: str) -> None:
        """Garbage-collect every dependent of ``uid`` (recursively)."""
        for key, o in list(self.objects.items()):
            refs = o["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs):
                del self.objects[key]
                child = self.procs.get(o["metadata"]["uid"])
                if child is not None and child.poll() is None:
                    child.kill()
                self._collect(o["metadata"]["uid"])

    def create_secret(self, ns: str, name: str, data: dict[str, str]) -> None:
        obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }
        code, body = self.create("secrets", ns, obj)
        assert code == 201, body

    def trigger_cronjob(self, ns: str, name: str, suffix: str = "1") -> str:
        """Start the CronJob's job template now (as the CronJob controller would)."""
        cj = self.get("cronjobs", ns, name)
        assert cj is not None, name
        tmpl = cj["spec"]["jobTemplate"]
        job_name = f"{name}-{suffix}"
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": job_name,
                "labels": dict((tmpl.get("metadata") or {}).get("labels") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": name,
                        "uid": cj["metadata"]["uid"],
                    }
                ],
            },
            "spec": copy.deepcopy(tmpl["spec"]),
        }
        code, body = self.create("jobs", ns, job)
        assert code == 201, body
        return job_name

    def wait_job(self, ns: str, name: str, timeout: float = 120) -> str:
        """Block until the Job is Complete/Failed; return ``succeeded``/``failed``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get("jobs", ns, name)
            for c in ((job or {}).get("status") or {}).get("conditions") or []:
                if c["status"] == "True" and c["type"] in ("Complete", "Failed"):
                    return "succeeded" if c["type"] == "Complete" else "failed"
            time.sleep(0.1)
        raise TimeoutError(f"job {name} still running after {timeout}s")

    # -- the Job controller + kubelet -----------------------------------------------------------

    def _alive(self, ns: str, name: str, uid: str) -> bool:
        with self.lock:
            o = self.objects.get(("jobs", ns, name))
            return o is not None and o["metadata"]["uid"] == uid

    def _update_job(self, ns: str, name: str, uid: str, **status: Any) -> None:
        with self.lock:
            o = self.objects.get(("jobs", ns, name))
            if o is None or o["metadata"]["uid"] != uid:
                return
            o.setdefault("status", {}).update(status)
            o["metadata"]["resourceVersion"] = self._next_rv()

    def _run_job(self, ns: str, name: str, uid: str) -> None:
        job = self.get("jobs", ns, name)
        if job is None:
            return
        spec = job["spec"]
        indexed = spec.get("completionMode") == "Indexed"
        completions = int(spec.get("completions") or 1)
        backoff = int(spec.get("backoffLimit", 6))
        state = {"failed": 0, "succeeded": 0, "active": 0, "gave_up": False, "deadline": False}
        lock = threading.Lock()
        self._update_job(ns, name, uid, startTime=_now(), active=0)

        def one(index: int | None) -> None:
            while self._alive(ns, name, uid):
                with lock:
                    if state["gave_up"]:
                        return
                    state["active"] += 1
                self._update_job(ns, name, uid, active=state["active"])
                rc, deadline = self._run_pod(ns, job, index)
                with lock:
                    state["active"] -= 1
                    if rc == 0:
                        state["succeeded"] += 1
                    else:
                        state["failed"] += 1
                        state["deadline"] = state["deadline"] or deadline
                        if state["failed"] > backoff:
                            state["gave_up"] = True
                    self._update_job(
                        ns,
                        name,
                        uid,
                        active=state["active"],
                        succeeded=state["succeeded"],
                        failed=state["failed"],
                    )
                    if rc == 0 or state["gave_up"]:
                        return

        indexes: list[int | None] = list(range(completions)) if indexed else [None] * completions
        parallel = int(spec.get("parallelism") or 1)
        pending = list(indexes)
        while pending:
            batch, pending = pending[:parallel], pending[parallel:]
            threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in batch]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        ok = state["succeeded"] >= completions and not state["gave_up"]
        cond = {
            "type": "Complete" if ok else "Failed",
            "status": "True",
            "lastProbeTime": _now(),
            "lastTransitionTime": _now(),
        }
        if not ok:
            cond["reason"] = "DeadlineExceeded" if state["deadline"] else "BackoffLimitExceeded"
            cond["message"] = (
                "Pod was active longer than specified deadline"
                if state["deadline"]
                else "Job has reached the specified backoff limit"
            )
        self._update_job(
            ns, name, uid, conditions=[cond], completionTime=_now() if ok else None, active=0
        )

    def _run_pod(self, ns: str, job: dict[str, Any], index: int | None) -> tuple[int, bool]:
        """Create a pod for the job, run its container locally, return (exit code, timed out)."""
        tmpl = job["spec"]["template"]
        jname, juid = job["metadata"]["name"], job["metadata"]["uid"]
        pod_name = f"{jname}-{'' if index is None else f'{index}-'}{uuid.uuid4().hex[:5]}"
        labels = {
            **((tmpl.get("metadata") or {}).get("labels") or {}),
            "job-name": jname,
            "batch.kubernetes.io/job-name": jname,
            "controller-uid": juid,
            "batch.kubernetes.io/controller-uid": juid,
        }
        annotations = {}
        if index is not None:
            annotations["batch.kubernetes.io/job-completion-index"] = str(index)
            labels["batch.kubernetes.io/job-completion-index"] = str(index)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": jname,
                        "uid": juid,
                        "controller": True,
                    }
                ],
            },
            "spec": copy.deepcopy(tmpl["spec"]),
            "status": {"phase": "Pending"},
        }
        with self.lock:
            if ("jobs", ns, jname) not in self.objects:
                return 1, False
            stored = self._store("pods", ns, pod)
        puid = stored["metadata"]["uid"]
        container = pod["spec"]["containers"][0]
        log_path = self.workdir / ".fake-k8s" / "logs" / f"{pod_name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            env, argv = self._container_env(ns, stored, container, index)
        except KeyError as e:
            log_path.write_text(f"CreateContainerConfigError: {e}\n")
            self._finish_pod(ns, pod_name, log_path, 1)
            return 1, False
        timeout = pod["spec"].get("activeDeadlineSeconds")
        self._set_pod(ns, pod_name, {"phase": "Running", "startTime": _now()})
        with open(log_path, "wb") as fh:
            proc = subprocess.Popen(  # noqa: S603 - the test's own commands
                argv,
                cwd=self.workdir,
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            with self.lock:
                self.procs[puid] = proc
                self.procs[juid] = proc
            timed_out = False
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                rc, timed_out = 137, True
        self._finish_pod(ns, pod_name, log_path, rc, "DeadlineExceeded" if timed_out else None)
        return rc, timed_out

    def read_log(self, ns: str, pod: str) -> str:
        """The pod's log so far (a running pod's log grows)."""
        if (ns, pod) in self.logs:
            return self.logs[(ns, pod)]
        live = self.workdir / ".fake-k8s" / "logs" / f"{pod}.log"
        return live.read_text(errors="replace") if live.exists() else ""

    def _set_pod(self, ns: str, name: str, status: dict[str, Any]) -> None:
        with self.lock:
            o = self.objects.get(("pods", ns, name))
            if o is not None:
                o["status"].update(status)
                o["metadata"]["resourceVersion"] = self._next_rv()

    def _finish_pod(
        self, ns: str, name: str, log: Path, rc: int, reason: str | None = None
    ) -> None:
        self.logs[(ns, name)] = log.read_text(errors="replace") if log.exists() else ""
        status: dict[str, Any] = {
            "phase": "Succeeded" if rc == 0 else "Failed",
            "containerStatuses": [
                {
                    "name": "main",
                    "ready": False,
                    "restartCount": 0,
                    "image": "local",
                    "imageID": "",
                    "state": {
                        "terminated": {
                            "exitCode": rc,
                            "reason": "Completed" if rc == 0 else "Error",
                        }
                    },
                }
            ],
        }
        if reason:
            status["reason"] = reason
        self._set_pod(ns, name, status)

    def _container_env(
        self, ns: str, pod: dict[str, Any], c: dict[str, Any], index: int | None
    ) -> tuple[dict[str, str], list[str]]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["HOSTNAME"] = pod["metadata"]["name"]
        defined: dict[str, str] = {}
        if index is not None:
            defined["JOB_COMPLETION_INDEX"] = str(index)
        for e in c.get("env") or []:
            if "value" in e:
                value = _VAR.sub(lambda m: defined.get(m.group(1), m.group(0)), str(e["value"]))
            else:
                src = e["valueFrom"]
                if "fieldRef" in src:
                    value = _field(pod, src["fieldRef"]["fieldPath"])
                elif "secretKeyRef" in src:
                    ref = src["secretKeyRef"]
                    secret = self.get("secrets", ns, ref["name"])
                    if secret is None or ref["key"] not in (secret.get("data") or {}):
                        raise KeyError(f"secret {ref['name']}/{ref['key']} not found")
                    value = base64.b64decode(secret["data"][ref["key"]]).decode()
                else:
                    raise KeyError(f"unsupported valueFrom {src}")
            defined[e["name"]] = value
        mounts = self._mounts(ns, pod, c)
        for k, v in defined.items():  # paths under a mount point refer to the local folder
            for mount_path, local in mounts:
                if v == mount_path or v.startswith(mount_path + "/"):
                    defined[k] = str(local) + v[len(mount_path) :]
        env.update(defined)

        def expand(arg: str) -> str:
            arg = _VAR.sub(lambda m: defined.get(m.group(1), m.group(0)), arg)
            for mount_path, local in mounts:
                if arg == mount_path or arg.startswith(mount_path + "/"):
                    arg = str(local) + arg[len(mount_path) :]
            return arg

        argv = [expand(a) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        return env, argv

    def _mounts(self, ns: str, pod: dict[str, Any], c: dict[str, Any]) -> list[tuple[str, Path]]:
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        out = []
        for m in c.get("volumeMounts") or []:
            v = volumes[m["name"]]
            if "configMap" in v or "projected" in v:  # projected: ConfigMap sources only
                sources = (
                    [{"configMap": v["configMap"]}]
                    if "configMap" in v
                    else v["projected"]["sources"]
                )
                local = self.workdir / ".fake-k8s" / "volumes" / pod["metadata"]["name"] / m["name"]
                local.mkdir(parents=True, exist_ok=True)
                written: set[str] = set()
                for source in sources:
                    cm = self.get("configmaps", ns, source["configMap"]["name"])
                    if cm is None:  # the kubelet cannot mount the volume: the pod never starts
                        raise KeyError(f"configmap {source['configMap']['name']} not found")
                    for key, text in (cm.get("data") or {}).items():
                        if key in written:  # the kubelet refuses conflicting projected paths
                            raise KeyError(f"projected volume {m['name']}: two sources hold {key}")
                        written.add(key)
                        (local / key).write_text(text, encoding="utf-8")
            elif "persistentVolumeClaim" in v:
                local = self.workdir / ".fake-k8s" / "pvc" / v["persistentVolumeClaim"]["claimName"]
                local.mkdir(parents=True, exist_ok=True)
            else:
                raise KeyError(f"unsupported volume {v}")
            out.append((m["mountPath"], local))
        return out

    # -- HTTP -----------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Any, ctype: str = "application/json") -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                return json.loads(raw) if raw else {}

            def _route(self) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
                u = urlparse(self.path)
                m = _PATH.match(u.path)
                q = parse_qs(u.query)
                if not m or m.group("plural") not in KINDS:
                    return None, q
                group = m.group("group")
                want = KINDS[m.group("plural")][0]
                got = "v1" if group is None else f"{group}/{m.group('ver')}"
                return (m.groupdict() if got == want else None), q

            def do_GET(self) -> None:  # noqa: N802
                cluster.requests.append(("GET", self.path))
                r, q = self._route()
                if r is None:
                    return self._send(404, _status(404, "NotFound", f"no route {self.path}"))
                if "watch" in q and q["watch"][0] in ("1", "true"):
                    return self._send(400, _status(400, "BadRequest", "watch is not supported"))
                plural, ns, name, sub = r["plural"], r["ns"], r["name"], r["sub"]
                if cluster.inject.get(("GET", plural)):
                    cluster.inject[("GET", plural)] -= 1
                    return self._send(503, _status(503, "ServiceUnavailable", "injected"))
                if name is None:
                    items = cluster.items(plural, ns, (q.get("labelSelector") or [None])[0])
                    api_version, kind = KINDS[plural]
                    return self._send(
                        200,
                        {
                            "apiVersion": api_version,
                            "kind": f"{kind}List",
                            "metadata": {"resourceVersion": str(cluster._rv)},
                            "items": items,
                        },
                    )
                obj = cluster.get(plural, ns, name)
                if obj is None:
                    return self._send(404, _status(404, "NotFound", f'{plural} "{name}" not found'))
                if sub == "log":
                    return self._send(200, cluster.read_log(ns, name), "text/plain")
                return self._send(200, obj)

            def do_POST(self) -> None:  # noqa: N802
                cluster.requests.append(("POST", self.path))
                r, _ = self._route()
                if r is None or r["name"] is not None:
                    return self._send(404, _status(404, "NotFound", f"no route {self.path}"))
                code, body = cluster.create(r["plural"], r["ns"], self._body())
                return self._send(code, body)

            def do_DELETE(self) -> None:  # noqa: N802
                cluster.requests.append(("DELETE", self.path))
                r, q = self._route()
                if r is None or r["name"] is None:
                    return self._send(404, _status(404, "NotFound", f"no route {self.path}"))
                body = self._body()
                policy = body.get("propagationPolicy") or (q.get("propagationPolicy") or [None])[0]
                code, out = cluster.delete(r["plural"], r["ns"], r["name"], policy)
                return self._send(code, out)

            def do_PUT(self) -> None:  # noqa: N802
                self._send(405, _status(405, "MethodNotAllowed", "not supported by the fake"))

            do_PATCH = do_PUT  # noqa: N815

        return Handler


def _field(pod: dict[str, Any], path: str) -> str:
    md = pod["metadata"]
    if path == "metadata.name":
        return md["name"]
    if path == "metadata.namespace":
        return md["namespace"]
    if path == "metadata.uid":
        return md["uid"]
    m = re.match(r"^metadata\.(labels|annotations)\['([^']+)'\]$", path)
    if m:
        return (md.get(m.group(1)) or {}).get(m.group(2), "")
    raise KeyError(f"unsupported fieldPath {path}")


def plan_configmap(ir: Any) -> dict[str, Any]:
    """The plan ConfigMap of ``ir`` compiled for the k8s target (what the driver reads)."""
    import yaml

    from flowc.compiler.api import emit

    docs = [d for d in yaml.safe_load_all(emit(ir, "k8s")["manifests.yaml"]) if d]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    return cm


def drive_configmap(
    cluster: FakeCluster, cm: dict[str, Any], monkeypatch: Any, run_id: str = "r1"
) -> tuple[int, Any]:
    """Create ``cm`` in the cluster's ``default`` namespace and run the driver on it from the
    cluster's work folder, polling fast: (its exit code, the run's local artifact store)."""
    from kubernetes import utils

    from flowc.runtime.k8s import api_client, drive
    from flowc.runtime.store import LocalArtifactStore

    monkeypatch.setenv("FLOWC_K8S_POLL", "0.2")
    utils.create_from_dict(api_client(str(cluster.kubeconfig)), cm, namespace="default")
    monkeypatch.chdir(cluster.workdir)
    monkeypatch.delenv("FLOWC_DRIVER_JOB", raising=False)
    code = drive(
        [
            *("--configmap", cm["metadata"]["name"]),
            *("--kubeconfig", str(cluster.kubeconfig)),
            *("--run-id", run_id, "--namespace", "default"),
        ]
    )
    return code, LocalArtifactStore({"path": str(cluster.workdir / ".flowc" / "artifacts")})
