"""The ``gcs`` artifact store: step outputs as objects in a Google Cloud Storage bucket.

Objects are ``gs://<bucket>/<prefix>/runs/<run_id>/<step>/<output>.{json,pkl}`` (same layout and
encoding as :class:`flowc.runtime.store.LocalArtifactStore`). ``google-cloud-storage`` (extra
``gcp``) is imported on first use; ``STORAGE_EMULATOR_HOST`` points the client at an emulator.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowc.runtime.store import ArtifactStore, StoreError, decode, encode, safe_name


class GcsArtifactStore(ArtifactStore):
    """Step outputs in a GCS bucket. ``settings``: ``bucket`` (required), ``prefix``, ``project``."""

    def __init__(self, settings: Mapping[str, Any] | None = None, root: str | Path = ".flowc"):
        settings = dict(settings or {})
        bucket = settings.get("bucket")
        if not bucket:
            raise StoreError("gcs artifact store needs a 'bucket'")
        self.bucket_name: str = bucket
        self.prefix: str = str(settings.get("prefix") or "").strip("/")
        self.project: str | None = settings.get("project")
        self._bucket: Any = None

    @property
    def bucket(self) -> Any:
        if self._bucket is None:
            try:
                from google.cloud import storage
            except ImportError as e:  # pragma: no cover - depends on the install
                raise StoreError(
                    "the gcs artifact store needs google-cloud-storage: pip install 'flowc[gcp]'"
                ) from e
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                client = storage.Client(
                    project=self.project or "flowc-test", credentials=AnonymousCredentials()
                )
            else:
                client = storage.Client(project=self.project)
            self._bucket = client.bucket(self.bucket_name)
        return self._bucket

    def _name(self, run_id: str, step: str, output: str, fmt: str) -> str:
        suffix = ".json" if fmt == "json" else ".pkl"
        parts = [self.prefix] if self.prefix else []
        parts += ["runs", safe_name(run_id), safe_name(step), safe_name(output) + suffix]
        return "/".join(parts)

    def put(self, run_id: str, step: str, output: str, value: Any) -> str:
        fmt, data = encode(value)
        name = self._name(run_id, step, output, fmt)
        # one object upload is atomic: readers see the old object or the whole new one
        self.bucket.blob(name).upload_from_string(data, content_type=_content_type(fmt))
        other = self.bucket.blob(self._name(run_id, step, output, _other(fmt)))
        if other.exists():
            other.delete()
        return f"gs://{self.bucket_name}/{name}"

    def get(self, run_id: str, step: str, output: str) -> Any:
        from google.api_core.exceptions import NotFound

        for fmt in ("json", "pickle"):
            blob = self.bucket.blob(self._name(run_id, step, output, fmt))
            try:
                data = blob.download_as_bytes()
            except NotFound:
                continue
            return decode(fmt, data)
        raise StoreError(f"no artifact for {run_id}/{step}/{output} in gs://{self.bucket_name}")

    def exists(self, run_id: str, step: str, output: str) -> bool:
        return any(
            self.bucket.blob(self._name(run_id, step, output, f)).exists()
            for f in ("json", "pickle")
        )


def _other(fmt: str) -> str:
    return "pickle" if fmt == "json" else "json"


def _content_type(fmt: str) -> str:
    return "application/json" if fmt == "json" else "application/octet-stream"
