"""The built-in stack components: orchestrators ``local``, ``airflow``, ``kubeflow`` (alias
``kfp``), ``vertex``, ``kubernetes`` (alias ``k8s``); artifact stores ``local`` and ``gcs``; the
``sqlite`` metadata store; container registries ``gcr``, ``artifact_registry``, ``docker``.
Importing this module registers them in the process-wide registry."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flowc.runtime.stack.framework import (
    REQUIRED,
    ArtifactStore,
    ComponentError,
    ContainerRegistry,
    MetadataStore,
    Orchestrator,
    setting,
)
from flowc.runtime.stack.registry import _REGISTRY, C

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# lowercase letters, digits, hyphens; starts with a letter; optional legacy "domain.com:" scope
_GCP_PROJECT = re.compile(r"^([a-z0-9][-a-z0-9.]*[a-z0-9]:)?[a-z]([-a-z0-9]{0,28}[a-z0-9])?$")
_GCP_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_BUCKET = re.compile(r"^[a-z0-9][-a-z0-9_.]{1,220}[a-z0-9]$")


def _builtin(cls: C) -> C:
    _REGISTRY.register(cls, source="builtin")
    return cls


@_builtin
class LocalOrchestrator(Orchestrator):
    """``flowc run`` on this machine (the local target)."""

    type_name = "local"
    target = "local"
    # the settings, set by StackComponent.__init__ from SETTINGS
    max_workers: int | None
    SETTINGS = {"max_workers": setting(int, help="parallel steps (default: CPU count)")}

    def validate(self) -> bool:
        if self.max_workers is not None and self.max_workers < 1:
            raise ComponentError("max_workers must be at least 1", key="max_workers")
        return True


@_builtin
class AirflowOrchestrator(Orchestrator):
    """Airflow 3 DAG files; ``dag_folder`` is where ``flowc compile`` writes by default."""

    type_name = "airflow"
    target = "airflow"
    # the settings, set by StackComponent.__init__ from SETTINGS
    dag_folder: str | None
    pod_operator: bool
    namespace: str | None
    SETTINGS = {
        "dag_folder": setting(str, help="where the DAG file goes (default output folder)"),
        "pod_operator": setting(bool, default=False, help="run steps as KubernetesPodOperator"),
        "namespace": setting(str, help="pod namespace when pod_operator is true"),
    }

    def default_output(self) -> str | None:
        return self.dag_folder

    def validate(self) -> bool:
        if self.dag_folder is not None and not self.dag_folder.strip():
            raise ComponentError("dag_folder must not be empty", key="dag_folder")
        if self.namespace is not None and not _DNS1123.match(self.namespace):
            raise ComponentError(
                f"namespace '{self.namespace}' is not a DNS-1123 label", key="namespace"
            )
        return True


@_builtin
class KubeflowOrchestrator(Orchestrator):
    """A KFP v2 pipeline package (``host``: the KFP API endpoint used to submit it)."""

    type_name = "kubeflow"
    target = "kfp"
    # the settings, set by StackComponent.__init__ from SETTINGS
    host: str | None
    namespace: str | None
    SETTINGS = {
        "host": setting(str, help="KFP API endpoint, e.g. http://localhost:8080"),
        "namespace": setting(str),
    }

    def validate(self) -> bool:
        if self.host is not None and not re.match(r"^https?://[^\s/]+", self.host):
            raise ComponentError(
                f"host '{self.host}' is not an http(s) URL",
                key="host",
                hint="e.g. http://localhost:8080",
            )
        return True


_REGISTRY.register(KubeflowOrchestrator, "kfp", source="builtin (alias of kubeflow)")


@_builtin
class VertexOrchestrator(Orchestrator):
    """Vertex AI Pipelines (project, region, pipeline_root, service_account, network)."""

    type_name = "vertex"
    target = "vertex"
    # the settings, set by StackComponent.__init__ from SETTINGS
    project: str
    region: str
    pipeline_root: str | None
    service_account: str | None
    network: str | None
    experiment: str | None
    SETTINGS = {
        "project": setting(str, default=REQUIRED, help="the GCP project id"),
        "region": setting(str, default="us-central1"),
        "pipeline_root": setting(str, help="gs://bucket/path for pipeline outputs"),
        "service_account": setting(str),
        "network": setting(str, help="projects/NUMBER/global/networks/NAME"),
        "experiment": setting(str),
    }

    def validate(self) -> bool:
        if not _GCP_PROJECT.match(self.project):
            raise ComponentError(
                f"project '{self.project}' is not a valid GCP project id",
                key="project",
                hint="lowercase letters, digits and hyphens (at most 30), starting with a letter",
            )
        if not _GCP_REGION.match(self.region):
            raise ComponentError(
                f"region '{self.region}' is not a GCP region", key="region", hint="e.g. us-central1"
            )
        if self.pipeline_root is not None and not self.pipeline_root.startswith("gs://"):
            raise ComponentError(
                f"pipeline_root '{self.pipeline_root}' must be a gs:// URI", key="pipeline_root"
            )
        if self.service_account is not None and "@" not in self.service_account:
            raise ComponentError(
                f"service_account '{self.service_account}' is not an email address",
                key="service_account",
            )
        if self.network is not None and not re.match(
            r"^projects/[^/]+/global/networks/[^/]+$", self.network
        ):
            raise ComponentError(
                f"network '{self.network}' must be projects/NUMBER/global/networks/NAME",
                key="network",
            )
        return True


@_builtin
class KubernetesOrchestrator(Orchestrator):
    """Plain Kubernetes manifests (a driver Job running the DAG, or one Job per step)."""

    type_name = "kubernetes"
    target = "k8s"
    # the settings, set by StackComponent.__init__ from SETTINGS
    namespace: str
    service_account: str | None
    image: str | None
    operator_image: str | None
    image_pull_secrets: list[Any]
    node_selector: dict[str, Any]
    tolerations: list[Any]
    ttl_seconds_after_finished: int | None
    image_pull_policy: str | None
    artifact_pvc: str | None
    starting_deadline_seconds: int | None
    poll_seconds: float | None
    SETTINGS = {
        "namespace": setting(str, default="default"),
        "service_account": setting(str),
        "image": setting(str, help="image of the driver (default: the flow's default image)"),
        "operator_image": setting(str, help="image of streaming operator pods (pypz)"),
        "image_pull_secrets": setting(list, default=[]),
        "node_selector": setting(dict, default={}),
        "tolerations": setting(list, default=[]),
        "ttl_seconds_after_finished": setting(int),
        # read by flowc.targets.k8s: see docs/k8s.md
        "image_pull_policy": setting(str, help="Always | IfNotPresent (default) | Never"),
        "artifact_pvc": setting(str, help="PersistentVolumeClaim shared by the driver and steps"),
        "starting_deadline_seconds": setting(int, help="CronJob startingDeadlineSeconds"),
        "poll_seconds": setting(float, help="how often the driver polls its step Jobs"),
    }

    def validate(self) -> bool:
        ns, sa = self.namespace, self.service_account
        if ns is not None and not (_DNS1123.match(ns) and len(ns) <= 63):
            raise ComponentError(f"namespace '{ns}' is not a DNS-1123 label", key="namespace")
        if sa is not None and not (_DNS1123_SUBDOMAIN.match(sa) and len(sa) <= 253):
            raise ComponentError(
                f"service_account '{sa}' is not a DNS-1123 subdomain", key="service_account"
            )
        for s in self.image_pull_secrets:
            if not isinstance(s, str):
                raise ComponentError(
                    "image_pull_secrets must be a list of names", key="image_pull_secrets"
                )
        for k, v in self.node_selector.items():
            if not isinstance(v, str):
                raise ComponentError(
                    f"node_selector '{k}' must map to a string", key="node_selector"
                )
        for t in self.tolerations:
            if not isinstance(t, dict):
                raise ComponentError("each toleration must be a mapping", key="tolerations")
        ttl = self.ttl_seconds_after_finished
        if ttl is not None and ttl < 0:
            raise ComponentError(
                "ttl_seconds_after_finished must be >= 0", key="ttl_seconds_after_finished"
            )
        return True


_REGISTRY.register(KubernetesOrchestrator, "k8s", source="builtin (alias of kubernetes)")


@_builtin
class LocalArtifactStoreComponent(ArtifactStore):
    """Files on this machine: ``<path>/runs/<run>/<step>/<output>.{json,pkl}`` (the runtime's
    :class:`flowc.runtime.store.LocalArtifactStore`)."""

    type_name = "local"
    # the settings, set by StackComponent.__init__ from SETTINGS
    path: str | None
    SETTINGS = {"path": setting(str, help="folder (relative to the working directory)")}

    def validate(self) -> bool:
        if self.path is not None and not self.path.strip():
            raise ComponentError("path must not be empty", key="path")
        return True

    def open(self, root: str | Path = ".flowc") -> Any:
        from flowc.runtime.store import LocalArtifactStore

        return LocalArtifactStore(self.to_dict(), root)


@_builtin
class GcsArtifactStoreComponent(ArtifactStore):
    """A Google Cloud Storage bucket (``google-cloud-storage``, extra ``gcp``)."""

    type_name = "gcs"
    # the settings, set by StackComponent.__init__ from SETTINGS
    bucket: str
    prefix: str
    project: str | None
    SETTINGS = {
        "bucket": setting(str, default=REQUIRED),
        "prefix": setting(str, default=""),
        "project": setting(str),
    }

    def validate(self) -> bool:
        bucket = self.bucket
        if bucket.startswith("gs://"):
            raise ComponentError(
                f"bucket '{bucket}' must be a bucket name, not a URI",
                key="bucket",
                hint=f"write bucket: {bucket[5:].split('/')[0]}",
            )
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise ComponentError(f"'{bucket}' is not a valid bucket name", key="bucket")
        return True

    def open(self, root: str | Path = ".flowc") -> Any:
        from flowc.runtime.gcs_store import GcsArtifactStore

        return GcsArtifactStore(self.to_dict(), root)


@_builtin
class SqliteMetadataStore(MetadataStore):
    """The local runtime's SQLite database of runs and steps."""

    type_name = "sqlite"
    # the settings, set by StackComponent.__init__ from SETTINGS
    path: str | None
    SETTINGS = {"path": setting(str, help="database file (default .flowc/metadata.db)")}

    def validate(self) -> bool:
        if self.path is not None and not self.path.strip():
            raise ComponentError("path must not be empty", key="path")
        return True

    def location(self, root: str | Path = ".flowc") -> Path:
        return Path(self.path) if self.path else Path(root) / "metadata.db"


class _UriRegistry(ContainerRegistry):
    SETTINGS = {"uri": setting(str, default=REQUIRED)}

    @property
    def uri(self) -> str:
        return str(self.settings["uri"])

    def validate(self) -> bool:
        uri = self.uri
        if "://" in uri:
            raise ComponentError(
                f"uri '{uri}' must not have a scheme",
                key="uri",
                hint=f"write {uri.split('://', 1)[1]}",
            )
        if not uri.strip("/") or " " in uri:
            raise ComponentError(f"uri '{uri}' is not a registry path", key="uri")
        return True


@_builtin
class GcrRegistry(_UriRegistry):
    """Google Container Registry: ``uri: gcr.io/PROJECT`` (or eu./us./asia.gcr.io)."""

    type_name = "gcr"

    def validate(self) -> bool:
        super().validate()
        if not re.match(r"^([a-z]+\.)?gcr\.io/[^/]+", self.uri):
            raise ComponentError(
                f"uri '{self.uri}' is not a gcr.io path", key="uri", hint="e.g. gcr.io/my-project"
            )
        return True


@_builtin
class ArtifactRegistry(ContainerRegistry):
    """Google Artifact Registry: ``uri`` or ``location`` + ``project`` + ``repository``."""

    type_name = "artifact_registry"
    SETTINGS = {
        "uri": setting(str),
        "location": setting(str),
        "project": setting(str),
        "repository": setting(str),
    }

    @property
    def uri(self) -> str:
        if self.settings["uri"]:
            return str(self.settings["uri"])
        s = self.settings
        return f"{s['location']}-docker.pkg.dev/{s['project']}/{s['repository']}"

    def validate(self) -> bool:
        s = self.settings
        if s["uri"]:
            if not re.match(r"^[a-z0-9-]+-docker\.pkg\.dev/[^/]+/[^/]+", s["uri"]):
                raise ComponentError(
                    f"uri '{s['uri']}' is not an Artifact Registry path",
                    key="uri",
                    hint="LOCATION-docker.pkg.dev/PROJECT/REPOSITORY",
                )
            return True
        for key in ("location", "project", "repository"):
            if not s[key]:
                raise ComponentError(
                    f"artifact_registry needs 'uri' or 'location', 'project' and 'repository' "
                    f"('{key}' is missing)",
                    key=key,
                )
        return True


@_builtin
class DockerRegistry(_UriRegistry):
    """Any Docker registry: ``uri: docker.io/acme``, ``localhost:5000``, ``registry.example/x``."""

    type_name = "docker"
