"""docs/tutorial.md is run as written: its ``bash`` block sets up the folder, each block whose
first line is ``# file: NAME`` is written to NAME, and each ``$ flowc ...`` line of a
``console`` block runs in order; what it prints (stdout and stderr) must be the output shown
under it, up to run ids, durations, dates, hashes and flowc's version; a shown line ``...``
stands for any lines. ``FLOWC_UPDATE_DOCS=1`` rewrites the
shown outputs from a fresh run (read the diff before committing)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = REPO / "docs" / "tutorial.md"
FOLDER = "wordcount"  # the folder the tutorial's bash block creates

BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)
_NORMALIZE = [
    (re.compile(r"\d{8}T\d{6}-[0-9a-f]{6}"), "RUN_ID"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "SHA256"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"), "DATE"),
    (re.compile(r"\b\d+\.\d+s\b"), "N.NNs"),
    (re.compile(r"(?<=attempt-)\d+"), "N"),
    (re.compile(r"flowc \d+\.\d+\.\d+\S*"), "flowc VERSION"),
]


def normalize(text: str) -> str:
    for pattern, repl in _NORMALIZE:
        text = pattern.sub(repl, text)
    return "\n".join(line.rstrip() for line in text.rstrip("\n").splitlines())


def matches(printed: str, shown: str) -> bool:
    """``printed`` is ``shown`` (both normalized), a ``...`` line matching any whole lines."""
    want, got = normalize(shown), normalize(printed)
    pattern = "".join(
        r"(?:[^\n]*\n)*" if line == "..." else re.escape(line) + r"\n" for line in want.split("\n")
    )
    return re.fullmatch(pattern, got + "\n") is not None


def flowc(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(command)
    assert argv[0] == "flowc", command
    return subprocess.run(
        [sys.executable, "-m", "flowc", *argv[1:]],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "100"},
    )


def walk(text: str, base: Path) -> tuple[list[tuple[str, str, str]], str]:
    """Run the tutorial in ``base``: ``(command, shown, printed)`` per command, and the text
    with every console block's outputs replaced by what was printed."""
    project = base / FOLDER
    results: list[tuple[str, str, str]] = []
    pieces: list[str] = []
    last = 0
    for m in BLOCK.finditer(text):
        lang, body = m.group(1), m.group(2)
        if lang == "bash":
            subprocess.run(["bash", "-e", "-c", body], cwd=base, check=True)
        elif body.startswith("# file: "):
            first, _, rest = body.partition("\n")
            (project / first.removeprefix("# file: ").strip()).write_text(rest)
        elif lang == "console":
            new_body = []
            for chunk in re.split(r"^(?=\$ )", body, flags=re.M):
                if not chunk.strip():
                    continue
                command, _, shown = chunk.partition("\n")
                command = command.removeprefix("$ ")
                printed = flowc(command, project).stdout
                results.append((command, shown, printed))
                new_body.append(f"$ {command}\n{printed}")
            pieces.append(text[last : m.start(2)] + "".join(new_body))
            last = m.end(2)
    pieces.append(text[last:])
    return results, "".join(pieces)


def test_tutorial_runs_as_written(tmp_path: Path) -> None:
    text = TUTORIAL.read_text(encoding="utf-8")
    results, updated = walk(text, tmp_path)
    if os.environ.get("FLOWC_UPDATE_DOCS"):
        TUTORIAL.write_text(updated, encoding="utf-8")
        return
    assert len(results) >= 10
    for command, shown, printed in results:
        assert matches(printed, shown), (command, printed)


def test_tutorial_shows_what_a_new_user_needs() -> None:
    text = TUTORIAL.read_text(encoding="utf-8")
    for needed in (
        "flowc init",
        "--target airflow",
        "--target kfp",
        "--check",
        "img/quickstart-dag.png",
        "editors.md",
        "cli.md",
    ):
        assert needed in text, needed
    assert (REPO / "docs" / "img" / "quickstart-dag.png").is_file()


def test_the_output_matcher_can_fail() -> None:
    shown = "--- a/x\n...\nlast line"
    assert matches("--- a/x\nmany\nlines\nlast line\n", shown)
    assert matches("--- a/x\nlast line\n", shown)
    assert not matches("--- a/y\nmany\nlast line\n", shown)
    assert not matches("--- a/x\nmany\nanother last line\n", shown)
    assert matches(
        "run 20261207T005402-e57b1a success in 0.10s\n",
        "run 20260101T000000-aaaaaa success in 9.99s",
    )
    assert not matches("run X failed\n", "run X success")
