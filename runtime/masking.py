"""Masking secret values on the stream, before anything reaches a log file, the console or the
metadata store: every form a value takes in text (as is, JSON-escaped, ``repr()``-escaped),
line-buffered so a value written in several ``write()`` calls is still masked, and pumps that
mask what a child process or a raw file descriptor writes while it is written (so a runner
killed by SIGKILL leaves nothing unmasked behind)."""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

MASK = "***"
_FLUSH_AT = 1 << 16  # a longer line without a newline is written in pieces (safely cut)


@functools.lru_cache(maxsize=64)
def _forms(values: tuple[str, ...]) -> tuple[str, ...]:
    forms: set[str] = set()
    for value in values:
        if not value:
            continue
        forms.add(value)
        forms.add(json.dumps(value)[1:-1])  # JSON, \\uXXXX for non-ASCII
        forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
        forms.add(repr(value)[1:-1])  # repr(): the quotes it picked are not part of the value
        forms.add(repr(value.encode("utf-8"))[2:-1])  # a bytes value printed
    return tuple(sorted((f for f in forms if f), key=lambda f: (-len(f), f)))


def secret_forms(values: Iterable[str]) -> tuple[str, ...]:
    """Every text form of ``values`` to mask, longest first."""
    return _forms(tuple(sorted(set(values))))


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret value replaced by ``***``."""
    for form in secret_forms(secrets):
        if form in text:
            text = text.replace(form, MASK)
    return text


def _safe_cut(buf: str, forms: tuple[str, ...]) -> int:
    """Where ``buf`` (a long line) can be cut: no form straddles the cut and no form could
    start in what is kept and end in text still to come."""
    longest = max((len(f) for f in forms), default=1)
    cut = len(buf) - (longest - 1)
    moved = True
    while moved and cut > 0:
        moved = False
        for f in forms:
            start = buf.rfind(f, 0, cut + len(f) - 1)
            if start != -1 and start < cut < start + len(f):
                cut, moved = start, True
    return max(cut, 0)


class MaskingStream:
    """A text sink that masks line by line: ``write`` keeps a partial last line until its end
    (``\\n`` or ``\\r``) arrives, so a value split over several writes is masked; ``close``
    writes what is left. ``out`` receives the masked text."""

    def __init__(self, out: Callable[[str], Any], secrets: Iterable[str]):
        self._out = out
        # a list is read again on every write: values added to it later are masked too
        self._secrets = secrets if isinstance(secrets, list) else list(secrets)
        self._buf = ""
        self._lock = threading.Lock()

    @property
    def _forms(self) -> tuple[str, ...]:
        return secret_forms(self._secrets)

    def write(self, text: str) -> int:
        forms = self._forms
        if not forms and not self._buf:
            self._out(text)
            return len(text)
        with self._lock:
            buf = self._buf + text
            end = max(buf.rfind("\n"), buf.rfind("\r")) + 1
            if end == 0 and len(buf) > _FLUSH_AT:
                end = _safe_cut(buf, forms)
            self._buf = buf[end:]
            if end:
                self._out(self._mask(buf[:end]))
        return len(text)

    def _mask(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def close(self) -> None:
        with self._lock:
            rest, self._buf = self._buf, ""
        if rest:
            self._out(self._mask(rest))


def pump(read_fd: int, write: Callable[[bytes], Any], secrets: list[str]) -> threading.Thread:
    """Start a thread copying what arrives on ``read_fd`` to ``write``, masked line by line;
    it closes ``read_fd`` at end of file."""
    stream = MaskingStream(lambda text: write(text.encode("utf-8", "surrogateescape")), secrets)

    def loop() -> None:
        import codecs

        decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        try:
            while True:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                stream.write(decoder.decode(chunk))
            stream.write(decoder.decode(b"", final=True))
        except OSError:
            pass
        finally:
            stream.close()
            os.close(read_fd)

    thread = threading.Thread(target=loop, name="flowc-mask", daemon=True)
    thread.start()
    return thread


def file_writer(fh: Any) -> Callable[[bytes], None]:
    """``write(data)`` for :func:`pump`: append to a binary file and flush (the log is live)."""

    def write(data: bytes) -> None:
        fh.write(data)
        fh.flush()

    return write
