"""The pypz hello-world operators, ported to flowc (no pypz import: ports are set by flowc).

``DemoWriterOperator`` sends ``record_count`` records ``{"text": "HelloWorld_<replica>_<i>"}``
on its output port; ``DemoReaderOperator`` retrieves them, prints them and appends them to
``<out_dir>/reader.<replica>.jsonl`` before the runtime acknowledges them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class DemoWriterOperator:
    AvroSchemaString = {
        "type": "record",
        "name": "DemoRecord",
        "fields": [{"name": "text", "type": "string"}],
    }

    def __init__(self, record_count: int, message: str = "HelloWorld"):
        self.record_count = record_count  # required parameter (pypz RequiredParameter)
        self.message = message  # optional parameter (pypz OptionalParameter)
        self.output_record_count = 0
        self.replica = int(os.environ.get("FLOWC_REPLICA", "0"))
        self.ports: dict[str, Any] = {}

    def on_init(self) -> bool:
        return True

    def on_running(self) -> bool:
        record = {"text": f"{self.message}_{self.replica}_{self.output_record_count}"}
        self.ports["records"].send([record])
        self.output_record_count += 1
        return self.output_record_count == self.record_count

    def on_shutdown(self) -> bool:
        return True

    def on_interrupt(self, system_signal: int | None = None) -> None:
        print(f"writer {self.replica} interrupted by signal {system_signal}")

    def on_error(self, error: BaseException | None = None) -> None:
        print(f"writer {self.replica} failed: {error}")


class DemoReaderOperator:
    def __init__(self, out_dir: str = ".flowc/hello"):
        self.replica = int(os.environ.get("FLOWC_REPLICA", "0"))
        self.out = Path(out_dir) / f"reader.{self.replica}.jsonl"
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.ports: dict[str, Any] = {}

    def on_init(self) -> bool:
        return True

    def on_running(self) -> bool | None:
        records = self.ports["records"].retrieve()
        if records:
            with open(self.out, "a", encoding="utf-8") as fh:
                for record in records:
                    fh.write(json.dumps(record) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        return None  # finish once every writer is done and everything was read

    def on_shutdown(self) -> bool:
        return True
