"""YAML -> plain data plus a location for every mapping key and value (pyyaml node marks).

One document, a mapping at the top. The YAML is *composed* with pyyaml's ``SafeLoader`` (never
constructed with a full loader), then walked here: duplicate keys, non-string keys, unknown tags
(``!!python/...`` included), recursive aliases and alias bombs are located errors. Timestamps stay
the strings the user wrote. :class:`Doc` maps a path of keys/indices (``("steps", "train",
"retries")``) back to a :class:`~flowc.compiler.errors.Loc`. Limits in bytes as well as nodes:
the input is read bounded (:data:`MAX_INPUT_BYTES`; devices and pipes are never read whole), and
the expanded document (aliases counted at every use) has a node and a character budget.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any

from flowc.compiler.errors import FlowcError, Loc

Path = tuple[Any, ...]

#: At most this many nodes (aliases expanded) per document beyond twice its distinct nodes.
ALIAS_BUDGET = 100_000
#: At most this many characters of keys and scalars (aliases expanded) beyond twice the
#: document's length: aliases of one large string pass the node budget, not this one.
EXPANDED_BUDGET = 8 * 1024 * 1024
#: A flow file larger than this is refused (read bounded: a device or pipe is never read whole).
MAX_INPUT_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 200

_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"
_TS = "tag:yaml.org,2002:timestamp"
_INT = "tag:yaml.org,2002:int"
_SCALARS = {
    _STR,
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    _TS,
}


@dataclass
class Doc:
    """A loaded flow file: ``data`` (dicts/lists/scalars) and where each part was written."""

    file: str
    data: dict[str, Any]
    text: str = ""
    value_locs: dict[Path, Loc] = field(default_factory=dict)
    key_locs: dict[Path, Loc] = field(default_factory=dict)
    # path -> column offset base for ``${`` inside a single-line scalar (None: not mappable)
    scalar_cols: dict[Path, int] = field(default_factory=dict)

    def loc(self, path: Path) -> Loc:
        """The loc of the value at ``path`` (or of its nearest written ancestor)."""
        path = tuple(path)
        while path:
            got = self.value_locs.get(path)
            if got is not None:
                return got
            path = path[:-1]
        return self.value_locs.get((), Loc(self.file, 1, 1))

    def key_loc(self, path: Path) -> Loc:
        """The loc of the key naming ``path`` (the value's loc for list items)."""
        path = tuple(path)
        got = self.key_locs.get(path)
        return got if got is not None else self.loc(path)

    def has(self, path: Path) -> bool:
        return tuple(path) in self.value_locs

    def offset_loc(self, path: Path, offset: int) -> Loc:
        """The loc of character ``offset`` inside the string scalar at ``path``: exact for a
        plain or quoted one-line scalar without escapes, else the scalar's own loc."""
        path = tuple(path)
        base = self.loc(path)
        col = self.scalar_cols.get(path)
        if col is None or not self.has(path):
            return base
        return Loc(base.file, base.line, col + offset)

    def data_path(self, loc: tuple[Any, ...]) -> Path:
        """The data path of a pydantic error location: components that are not part of the
        data (union/validator tags) are skipped."""
        path: list[Any] = []
        for part in loc:
            if (*path, part) in self.value_locs:
                path.append(part)
        return tuple(path)

    def map_error_path(self, loc: tuple[Any, ...], key: bool = False) -> Loc:
        """Map a pydantic error location to a Loc (see :meth:`data_path`); ``key=True`` points
        at the key (unknown keys)."""
        path = self.data_path(loc)
        if key and path:
            return self.key_loc(path)
        return self.loc(path)


def _loc(file: str, mark: Any) -> Loc:
    return Loc(file, mark.line + 1, mark.column + 1)


def read_source(path: str) -> tuple[bytes, str]:
    """The bytes of ``path`` and their UTF-8 text (FlowcError when unreadable or not UTF-8)."""
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode) and not stat.S_ISFIFO(
                os.fstat(f.fileno()).st_mode
            ):
                raise FlowcError.at(
                    None, f"cannot read {path}: not a regular file", "give the path of a flow file"
                )
            raw = f.read(MAX_INPUT_BYTES + 1)
    except OSError as e:
        raise FlowcError.at(None, f"cannot read {path}: {e.strerror or e}") from None
    if len(raw) > MAX_INPUT_BYTES:
        raise FlowcError.at(Loc(path, 1, 1), _too_large())
    try:
        return raw, raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FlowcError.at(
            Loc(path, 1, 1), f"not UTF-8 text ({e.reason} at byte {e.start})"
        ) from None


def _too_large() -> str:
    return f"the file is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB; flowc reads no more"


def load_file(path: str) -> Doc:
    """Read and load ``path`` (the path is kept as given, for messages)."""
    return load_text(read_source(path)[1], path)


def load_text(text: str, file: str = "<string>") -> Doc:
    """Load one YAML document from ``text``; errors are located in ``file``."""
    import yaml

    if text.startswith("\ufeff"):
        text = text[1:]
    if len(text) > MAX_INPUT_BYTES:
        raise FlowcError.at(Loc(file, 1, 1), _too_large())
    global _LOADER
    if _LOADER is None:
        _LOADER = _pick_loader()
    loader = None
    try:
        try:
            loader = _LOADER(text)
            loader.name = file
            if not loader.check_node():
                raise FlowcError.at(
                    Loc(file, 1, 1), "empty file: expected a mapping with 'flowc: 1'"
                )
            node = loader.get_node()
            if loader.check_node():
                nxt = _loc(file, loader.peek_event().start_mark)
                sep = re.compile(r"^(---|\.\.\.)", re.M).search(text, node.end_mark.index)
                if sep is not None and sep.start() < len(text):
                    line = text.count("\n", 0, sep.start()) + 1
                    nxt = Loc(file, line, 1) if line <= nxt.line else nxt
                raise FlowcError.at(
                    nxt,
                    "more than one YAML document in the file",
                    "a flow file holds exactly one document; remove the extra '---'",
                )
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            loc = _loc(file, mark) if mark is not None else Loc(file, 1, 1)
            msg = (e.problem or e.context or "invalid YAML").strip()
            raise FlowcError.at(loc, f"YAML syntax error: {msg}") from None
        except RecursionError:
            raise FlowcError.at(Loc(file, 1, 1), "YAML nesting is too deep") from None
        except yaml.reader.ReaderError as e:  # control characters, bad encodings
            before = text[: e.position]
            line = before.count("\n") + 1
            col = e.position - (before.rfind("\n") + 1) + 1
            ch = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
            raise FlowcError.at(
                Loc(file, line, col), f"character {ch} is not allowed in YAML", "remove it"
            ) from None
        except yaml.YAMLError as e:  # pragma: no cover - anything else pyyaml may raise
            raise FlowcError.at(Loc(file, 1, 1), f"YAML error: {_short(e)}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        raise FlowcError.at(Loc(file, 1, 1), "empty file: expected a mapping with 'flowc: 1'")
    if not isinstance(node, yaml.MappingNode) or node.tag != _MAP:
        kind = {yaml.SequenceNode: "a list", yaml.ScalarNode: "a scalar"}.get(
            type(node), "not a mapping"
        )
        if isinstance(node, yaml.ScalarNode) and node.value == "" and node.tag.endswith("null"):
            raise FlowcError.at(
                _loc(file, node.start_mark), "empty document: expected a mapping with 'flowc: 1'"
            )
        raise FlowcError.at(
            _loc(file, node.start_mark),
            f"the document is {kind}; expected a mapping with 'flowc: 1'",
        )
    walker = _Walker(file, text)
    data = walker.walk(node, ())
    return Doc(file, data, text, walker.value_locs, walker.key_locs, walker.scalar_cols)


def _tag(tag: str) -> str:
    return "!!" + tag[len("tag:yaml.org,2002:") :] if tag.startswith("tag:yaml.org,2002:") else tag


def _short(e: Exception) -> str:
    return " ".join(str(e).split())


class _Walker:
    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text
        self.value_locs: dict[Path, Loc] = {}
        self.key_locs: dict[Path, Loc] = {}
        self.scalar_cols: dict[Path, int] = {}
        self.visits = 0
        self.chars = 0  # characters of keys and scalars visited (aliases expanded)
        self.char_budget = 2 * len(text) + EXPANDED_BUDGET
        self.seen: set[int] = set()
        self.active: set[int] = set()

    def _budget(self, node: Any) -> None:
        self.visits += 1
        self.seen.add(id(node))
        if self.visits > 2 * len(self.seen) + ALIAS_BUDGET:
            raise FlowcError.at(
                _loc(self.file, node.start_mark),
                "YAML aliases expand to too many nodes",
                "the document looks like an alias bomb; write the values out",
            )
        if isinstance(node.value, str):
            self.chars += len(node.value)
            if self.chars > self.char_budget:
                raise FlowcError.at(
                    _loc(self.file, node.start_mark),
                    f"YAML aliases expand to more than {self.char_budget} characters",
                    "the document looks like an alias bomb (a large value repeated by aliases); "
                    "write the values out or make them smaller",
                )

    def walk(self, node: Any, path: Path) -> Any:
        import yaml

        self._budget(node)
        loc = _loc(self.file, node.start_mark)
        self.value_locs[path] = loc
        if len(path) > MAX_DEPTH:
            raise FlowcError.at(loc, f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path, loc)
        if id(node) in self.active:
            raise FlowcError.at(loc, "recursive YAML alias", "an anchor may not contain itself")
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ:
                    raise FlowcError.at(loc, f"unsupported YAML tag '{_tag(node.tag)}'")
                return [self.walk(item, (*path, i)) for i, item in enumerate(node.value)]
            if node.tag != _MAP:
                raise FlowcError.at(loc, f"unsupported YAML tag '{_tag(node.tag)}'")
            out: dict[str, Any] = {}
            self.mapping(node, path, out, set())
            return out
        finally:
            self.active.discard(id(node))

    def mapping(self, node: Any, path: Path, out: dict[str, Any], written: set[str]) -> None:
        """Fill ``out``; keys written here beat merged (``<<``) keys; duplicates are errors."""
        import yaml

        merges: list[Any] = []
        for knode, vnode in node.value:
            if knode.tag == _MERGE:
                merges.append(vnode)
                continue
            self._budget(knode)
            kloc = _loc(self.file, knode.start_mark)
            # Keys are names: a plain key is its text (``on:``, ``yes:``, ``1:`` stay strings,
            # unlike YAML 1.1's booleans); collections and explicitly tagged keys are errors.
            if not isinstance(knode, yaml.ScalarNode):
                raise FlowcError.at(
                    kloc, "a mapping key must be a string, not a collection", _KEY_HINT
                )
            if knode.tag != _STR and not self._plain_key(knode):
                raise FlowcError.at(
                    kloc,
                    f"mapping key '{knode.value}' must be a string, not '{_tag(knode.tag)}'",
                    _KEY_HINT,
                )
            key = knode.value
            if key in written:
                raise FlowcError.at(
                    kloc,
                    f"duplicate key '{key}'",
                    f"first written at line {self.key_locs[(*path, key)].line}",
                )
            written.add(key)
            self.key_locs[(*path, key)] = kloc
            out[key] = self.walk(vnode, (*path, key))
        for m in merges:
            sources = m.value if isinstance(m, yaml.SequenceNode) else [m]
            for src in sources:
                if not isinstance(src, yaml.MappingNode):
                    raise FlowcError.at(
                        _loc(self.file, src.start_mark), "'<<' merges only mappings"
                    )
                sub: dict[str, Any] = {}
                if id(src) in self.active:
                    raise FlowcError.at(_loc(self.file, src.start_mark), "recursive YAML alias")
                self.active.add(id(src))
                try:
                    self.mapping(src, path + ("\0merge",), sub, set())
                finally:
                    self.active.discard(id(src))
                for k, v in sub.items():
                    if k not in out:
                        out[k] = v
                        self._relocate(path + ("\0merge", k), (*path, k))

    def _plain_key(self, knode: Any) -> bool:
        """True when the key was written without an explicit tag (``yes``, ``1``, ``null``)."""
        if knode.tag not in _SCALARS or knode.style or not self.text:
            return False
        raw = self.text[knode.start_mark.index : knode.end_mark.index]
        return _TAGGED.match(raw) is None

    def _relocate(self, old: Path, new: Path) -> None:
        n = len(old)
        for table in (self.value_locs, self.key_locs, self.scalar_cols):
            for p in [p for p in table if p[:n] == old]:
                table[new + p[n:]] = table.pop(p)

    def scalar(self, node: Any, path: Path, loc: Loc) -> Any:
        tag = node.tag
        if tag not in _SCALARS:
            raise FlowcError.at(
                loc,
                f"unsupported YAML tag '{_tag(tag)}'",
                "flowc reads plain YAML only (strings, numbers, booleans, null, lists, mappings)",
            )
        value = node.value
        if tag == _STR:
            sm, em = node.start_mark, node.end_mark
            if sm.line == em.line and "${" in value:
                raw = self.text[sm.index : em.index] if self.text else None
                if not node.style and raw == value:
                    self.scalar_cols[path] = loc.col
                elif node.style in ("'", '"') and raw == f"{node.style}{value}{node.style}":
                    self.scalar_cols[path] = loc.col + 1
            return value
        if tag == _TS:
            return value
        import yaml

        _init()
        try:
            return yaml.SafeLoader.yaml_constructors[tag](_CONSTRUCTOR, node)
        except (ValueError, KeyError, TypeError, OverflowError, ArithmeticError) as e:
            shown = value if len(value) <= 40 else f"{value[:20]}...{value[-10:]}"
            digits = sum(c.isdigit() for c in value)
            if tag == _INT and "digits" in str(e):
                msg = f"integer with {digits} digits is too large"
                hint = "quote it to keep it as a string"
            else:
                msg = f"'{shown}' is not a valid {_tag(tag)}"
                hint = f"write a valid {_tag(tag)[2:]} or quote the value to make it a string"
            raise FlowcError.at(loc, msg, hint) from None


_CONSTRUCTOR: Any = None
_TAGGED = re.compile(r"(&\S+\s+)?!")
_KEY_HINT = "mapping keys are names: write a plain or quoted string"


def _pick_loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader


_LOADER: Any = None


def _init() -> None:
    global _CONSTRUCTOR
    if _CONSTRUCTOR is None:
        import yaml

        _CONSTRUCTOR = yaml.SafeLoader("")


def subflow_path(including_file: str, uses: str) -> str:
    """The file a ``uses:`` entry names: relative to the including flow file's folder (kept
    relative when that file's path is, for messages)."""
    return os.path.normpath(os.path.join(os.path.dirname(including_file), uses))


def load_subflow(including_file: str, uses: str, at: Loc | None) -> Doc:
    """Load the sub-flow file of a ``uses:`` step; a missing or unreadable file is a
    FlowcError located at the ``uses:`` value."""
    path = subflow_path(including_file, uses)
    if not os.path.isfile(path):
        raise FlowcError.at(
            at,
            f"sub-flow file {uses!r} not found (looked for {path})",
            "uses: paths are relative to the flow file that names them",
        )
    try:
        return load_file(path)
    except FlowcError as e:
        for d in e.diagnostics:
            if d.loc is None:
                raise FlowcError.at(at, f"cannot load sub-flow {uses!r}: {d.message}") from None
        raise
