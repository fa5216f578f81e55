"""Read a YAML file into plain data plus the line of every ``$.path`` in it.

This module knows YAML and source positions; it knows nothing about what a workflow means.
Problems it finds (missing file, empty file, invalid YAML, duplicate keys) are returned as
``Problem`` records so the caller can report them with everything else at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from axo.errors import ConfigError, Problem

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

PathKey = tuple[str | int, ...]


def render_path(path: PathKey) -> str:
    """Render ``("agents", 2, "depends_on")`` as ``$.agents[2].depends_on``."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


@dataclass
class Source:
    """A parsed YAML document with the line of each path in it."""

    file: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)

    def line_of(self, path: PathKey) -> int | None:
        """Return the line of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), 1)

    def problem(self, path: PathKey, message: str, fix: str = "") -> Problem:
        return Problem(self.file, self.line_of(path), render_path(path), message, fix)


def _walk(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], dupes: list[Problem],
          file: str) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                dupes.append(Problem(file, key_node.start_mark.line + 1, render_path(child),
                                     f"duplicate key '{key}'",
                                     "keep one of them; YAML would silently use the last"))
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, lines, dupes, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, dupes, file)


def load_yaml(path: str | os.PathLike[str], *, what: str = "workflow") -> Source:
    """Parse ``path``; raise ConfigError for a missing, empty, invalid or ambiguous file."""
    file = os.fspath(path)
    p = Path(file)
    if not p.exists():
        raise ConfigError([Problem(file, None, "$", f"{what} file not found",
                                   "check the path; it is relative to the current directory")])
    if p.is_dir():
        raise ConfigError([Problem(file, None, "$", "is a directory, not a file",
                                   f"give the path of a {what} YAML file")])
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(file, None, "$", f"cannot read the file ({exc})",
                                   "check its permissions and that it is UTF-8 text")]) from None
    return parse_yaml(text, file=file, what=what)


def parse_yaml(text: str, *, file: str = "<string>", what: str = "workflow") -> Source:
    """Parse YAML text; see ``load_yaml``."""
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise ConfigError([Problem(file, 1, "$", "the file is empty",
                                   f"write a {what} in it; see the README's reference")])
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError([Problem(file, 1, "$", "the file is empty",
                                       f"write a {what} in it; see the README's reference")])
        lines: dict[PathKey, int] = {}
        dupes: list[Problem] = []
        _walk(node, (), lines, dupes, file)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([Problem(file, line, "$", f"invalid YAML: {reason}",
                                   "fix the syntax (indentation, quotes, colons) at that line")]
                          ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, None, "$", f"invalid YAML: {exc}",
                                   "fix the YAML syntax")]) from None
    finally:
        loader.dispose()
    if dupes:
        raise ConfigError(dupes)
    return Source(file=file, data=data, lines=lines)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(source: Source, env: dict[str, str] | None = None) -> list[Problem]:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string, in place.

    Values taken from the environment are remembered in ``source.secrets`` so they can be
    redacted; they are never put in a problem message. Returns the problems (unset variables).
    """
    environ = os.environ if env is None else env
    problems: list[Problem] = []

    def sub(value: str, path: PathKey) -> str:
        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in environ:
                val = environ[name]
                if val:
                    source.secrets.add(val)
                return val
            if default is not None:
                return default
            problems.append(source.problem(
                path, f"environment variable {name} is not set",
                f"export {name}=… before running, or write ${{{name}:-default}}"))
            return m.group(0)

        return _VAR.sub(repl, value)

    def visit(obj: Any, path: PathKey) -> Any:
        if isinstance(obj, str):
            return sub(obj, path) if "${" in obj else obj
        if isinstance(obj, dict):
            for k in list(obj):
                obj[k] = visit(obj[k], (*path, str(k)))
            return obj
        if isinstance(obj, list):
            for i, item in enumerate(obj):
                obj[i] = visit(item, (*path, i))
            return obj
        return obj

    source.data = visit(source.data, ())
    return problems


def iter_paths(data: Any, path: PathKey = ()) -> Iterator[tuple[PathKey, Any]]:
    """Yield every (path, value) in ``data``, depth first."""
    yield path, data
    if isinstance(data, dict):
        for k, v in data.items():
            yield from iter_paths(v, (*path, str(k)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from iter_paths(v, (*path, i))
