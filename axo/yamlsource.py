"""Read a YAML file into plain data plus the line of every ``$.path`` in it.

This module knows YAML, source positions and ``${VAR}`` expansion; it knows nothing about what
a workflow means. Problems it finds (missing, unreadable or empty file, invalid YAML, duplicate
keys, unset variables) are ``Problem`` records, each one line, so the caller can report them
with everything else at once. Values taken from the environment are remembered as secrets and
redacted from every problem made through ``Source.problem``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterator
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


def redact(text: str, secrets: Collection[str]) -> str:
    """Replace each secret in ``text`` with ``***``.

    A short secret (under 4 characters) is replaced only where it stands alone (not inside a
    word or a ``$.path[1]``), so that a value like ``1`` does not blank out every digit;
    values without a letter or digit are not secret enough to hide.
    """
    for s in sorted(secrets, key=len, reverse=True):
        if not any(c.isalnum() for c in s):
            continue
        if len(s) >= 4:
            text = text.replace(s, "***")
        else:
            text = re.sub(rf"(?<![\w.\[-]){re.escape(s)}(?![\w.\]-])", "***", text)
    return text


@dataclass
class Source:
    """A parsed YAML document with the line of each path in it.

    Attributes:
        file: the path as the user gave it.
        data: the parsed document.
        lines: the 1-based line of each path (of the key, for a mapping entry).
        secrets: values expanded from the environment; never shown in a problem.
        env_paths: paths whose string value was (partly) taken from the environment.
        problems: problems found while parsing that do not stop the validation
            (duplicate keys, when parsed with ``collect=True``).
    """

    file: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)
    env_paths: set[PathKey] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: PathKey) -> int | None:
        """Return the line of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), 1)

    def problem(self, path: PathKey, message: str, fix: str = "") -> Problem:
        """A located problem, with every secret value redacted from its text."""
        return Problem(
            self.file,
            self.line_of(path),
            render_path(path),
            redact(message, self.secrets),
            redact(fix, self.secrets),
        )


MAX_VALUES = 200_000  # scalars and collections a file may expand to, aliases expanded
MAX_FILE_BYTES = 16 * 2**20
MAX_DEPTH = 200  # collections inside collections (a JSON schema nests a dozen deep)
_INT64 = (-(2**63), 2**63 - 1)  # what msgspec (messages, logs, checkpoints) can carry


def _too_deep(root: yaml.Node) -> yaml.Node | None:
    """The first collection nested more than ``MAX_DEPTH`` deep, if any (found without
    recursion: deeper than Python's stack is exactly the case)."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen or isinstance(node, yaml.ScalarNode):
            continue
        seen.add(id(node))
        if depth > MAX_DEPTH:
            return node
        if isinstance(node, yaml.MappingNode):
            stack.extend((n, depth + 1) for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((n, depth + 1) for n in node.value)
    return None


def _huge_numbers(data: Any) -> list[tuple[PathKey, int]]:
    """Integers no 64-bit field can hold, with their paths."""
    out: list[tuple[PathKey, int]] = []
    stack: list[tuple[PathKey, Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(((*path, str(k)), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in enumerate(value))
        elif isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
            out.append((path, value))
    return out


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes ``root`` stands for with every alias expanded (an alias is the same
    node object again: each node's size is counted once, so a "billion laughs" file costs
    as much as its text, not as its expansion)."""
    size: dict[int, int] = {}
    open_: set[int] = set()  # being counted: met again below itself, it is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in size:
            continue
        if not children_done and id(node) in open_:
            return MAX_VALUES + 1  # a recursive alias expands forever
        if isinstance(node, yaml.MappingNode):
            kids = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            kids = list(node.value)
        else:
            size[id(node)] = 1
            continue
        if children_done:
            size[id(node)] = min(1 + sum(size.get(id(k), 1) for k in kids), MAX_VALUES + 1)
            open_.discard(id(node))
        else:
            open_.add(id(node))
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in size)
    return size[id(root)]


def _walk(
    node: yaml.Node, path: PathKey, lines: dict[PathKey, int], dupes: list[Problem], file: str
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            child = (*path, key)
            line = key_node.start_mark.line + 1
            if key in seen:
                dupes.append(
                    Problem(
                        file,
                        line,
                        render_path(child),
                        f"duplicate key '{key}' (first at line {seen[key]})",
                        "keep one of them; YAML would silently use the last",
                    )
                )
                # the last value wins, so its lines replace the first one's
                for stale in [k for k in lines if k[: len(child)] == child]:
                    del lines[stale]
            else:
                seen[key] = line
            lines[child] = line
            _walk(value_node, child, lines, dupes, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, dupes, file)


def load_yaml(
    path: str | os.PathLike[str],
    *,
    what: str = "workflow",
    collect: bool = False,
    relative_to: str = "the current directory",
) -> Source:
    """Parse the file at ``path``.

    Args:
        path: the file, as the user gave it (messages name it so).
        what: what the file holds, for messages ("workflow", "domain", …).
        collect: keep duplicate keys in ``Source.problems`` instead of raising.
        relative_to: where a relative path starts, for the hint when the file is missing.

    Raises:
        ConfigError: the file is missing, a directory, unreadable, not UTF-8, empty or
            invalid YAML (or has duplicate keys, unless ``collect``).
    """
    file = os.fspath(path)
    p = Path(file)
    if not file.strip():  # Path("") is the current folder
        raise ConfigError(
            [Problem("''", None, "$", "no file given", f"give the path of a {what} YAML file")]
        )
    if not p.exists():
        raise ConfigError(
            [
                Problem(
                    file,
                    None,
                    "$",
                    f"{what} file not found",
                    f"check the path; a relative path starts from {relative_to}",
                )
            ]
        )
    if p.is_dir():
        raise ConfigError(
            [
                Problem(
                    file,
                    None,
                    "$",
                    "is a directory, not a file",
                    f"give the path of a {what} YAML file",
                )
            ]
        )
    if not p.is_file():  # a pipe would block the read, a device never end it
        raise ConfigError(
            [
                Problem(
                    file,
                    None,
                    "$",
                    "not a regular file",
                    f"give the path of a {what} YAML file",
                )
            ]
        )
    if p.stat().st_size > MAX_FILE_BYTES:
        raise ConfigError(
            [
                Problem(
                    file,
                    None,
                    "$",
                    f"the file is larger than {MAX_FILE_BYTES // 2**20} MiB",
                    f"a {what} file is a few kilobytes: check the path",
                )
            ]
        )
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [
                Problem(
                    file,
                    None,
                    "$",
                    f"cannot read the file ({exc.strerror})",
                    "check that it exists and that you may read it",
                )
            ]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            [
                Problem(
                    file,
                    line,
                    "$",
                    f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x})",
                    "save it as UTF-8",
                )
            ]
        ) from None
    return parse_yaml(text.removeprefix("\ufeff"), file=file, what=what, collect=collect)


def _is_empty(text: str) -> bool:
    return all(not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines())


def parse_yaml(
    text: str, *, file: str = "<string>", what: str = "workflow", collect: bool = False
) -> Source:
    """Parse YAML text; see ``load_yaml``."""
    empty = ConfigError(
        [
            Problem(
                file,
                1,
                "$",
                "the file is empty",
                f"write a {what} in it, starting with 'agents:'"
                if what == "workflow"
                else f"write a {what} in it",
            )
        ]
    )
    if _is_empty(text):
        raise empty
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None or (
            isinstance(node, yaml.ScalarNode)
            and node.tag == "tag:yaml.org,2002:null"
            and not node.value
        ):
            raise empty
        if _expanded_size(node) > MAX_VALUES:
            raise ConfigError(
                [
                    Problem(
                        file,
                        None,
                        "$",
                        f"the file expands to more than {MAX_VALUES:,} values "
                        "(aliases of aliases?)",
                        "write the values out, or use fewer nested YAML aliases",
                    )
                ]
            )
        deep = _too_deep(node)
        if deep is not None:
            raise ConfigError(
                [
                    Problem(
                        file,
                        deep.start_mark.line + 1,
                        "$",
                        f"values nest more than {MAX_DEPTH} levels deep here",
                        "flatten the structure",
                    )
                ]
            )
        lines: dict[PathKey, int] = {}
        dupes: list[Problem] = []
        _walk(node, (), lines, dupes, file)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_problem(exc, text, file)]) from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise ConfigError(
            [
                Problem(
                    file,
                    line,
                    "$",
                    f"invalid YAML: control character #x{exc.character:04x} is not allowed",
                    "remove it; the file must be plain text",
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(
            [Problem(file, None, "$", f"invalid YAML: {reason}", "fix the YAML syntax")]
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    huge = sorted(
        (
            Problem(
                file,
                _line_of(lines, path),
                render_path(path),
                f"{value} is too large a number (at most {_INT64[1]:,} either way)",
                "use a smaller number",
            )
            for path, value in _huge_numbers(data)
        ),
        key=lambda problem: problem.line or 0,
    )
    if huge:
        raise ConfigError(huge)
    if dupes and not collect:
        raise ConfigError(dupes)
    return Source(file=file, data=data, lines=lines, problems=dupes)


def _line_of(lines: dict[PathKey, int], path: PathKey) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path)


def _syntax_problem(exc: yaml.MarkedYAMLError, text: str, file: str) -> Problem:
    """One line saying what is wrong with the YAML and where, for the common mistakes."""
    context = exc.context or ""
    problem = exc.problem or ""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    opened = exc.context_mark.line + 1 if exc.context_mark is not None else line
    fix = "fix the syntax (indentation, quotes, colons) at that line"
    if "tab" in problem or (
        mark is not None
        and "cannot start any token" in problem
        and text[mark.index : mark.index + 1] == "\t"
    ):
        what, fix = "a tab character in the indentation", "indent with spaces; YAML forbids tabs"
    elif "quoted scalar" in context:
        line = opened
        what, fix = "unclosed quote: the string opened here never ends", "close the quote"
    elif "flow sequence" in context or "flow mapping" in context:
        line = opened
        bracket = ("[", "]") if "sequence" in context else ("{", "}")
        what = f"unclosed '{bracket[0]}': it is opened here and never closed"
        fix = f"close it with '{bracket[1]}' (or separate the items with ',')"
    elif "block collection" in context or "block mapping" in context:
        what = "bad indentation: this line does not line up with the lines above it"
        fix = "indent it like the other keys or items at its level (spaces only)"
    elif "mapping values are not allowed" in problem:
        what = "a ': ' inside a plain value"
        fix = 'quote the value, e.g. "a: b"'
    elif "single document" in context:
        what = "more than one YAML document ('---')"
        fix = "keep one document per file"
    elif "undefined alias" in problem:
        what, fix = "an alias (*name) with no anchor", "define the anchor (&name) before using it"
    elif "unhashable key" in problem:
        what, fix = "a key that is a list or a mapping", "use a plain name as the key"
    else:
        what = " ".join((problem or context or "syntax error").split())
    return Problem(file, line, "$", f"invalid YAML: {what}", fix)


# `$${` is a literal `${`; a `${` that is not a well-formed reference is an error.
_REF = re.compile(r"\$\$\{|\$\{(?:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})?")


def expand_env(source: Source, env: dict[str, str] | None = None) -> list[Problem]:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string value, in place.

    As in the shell, the default applies when the variable is unset or empty; ``$${`` stands
    for a literal ``${``. Values taken from the environment are remembered in
    ``source.secrets`` (and their paths in ``source.env_paths``) so they can be redacted;
    they are never put in a problem message.

    Returns:
        the problems: unset variables without a default, malformed references.
    """
    environ = os.environ if env is None else env
    problems: list[Problem] = []

    def sub(value: str, path: PathKey) -> str:
        def repl(m: re.Match[str]) -> str:
            whole, name, default = m.group(0), m.group(1), m.group(2)
            if whole == "$${":
                return "${"
            if name is None or (default is not None and "${" in default):
                end = value.find("}", m.start())
                shown = value[m.start() : end + 1] if end >= 0 else value[m.start() :]
                problems.append(
                    source.problem(
                        path,
                        f"malformed variable reference '{shown[:40]}'",
                        "write ${NAME} or ${NAME:-default} (and $${ for a literal ${)",
                    )
                )
                return whole
            if default is not None and not environ.get(name):  # unset or empty, as in sh
                return default
            if name in environ:
                val = environ[name]
                source.env_paths.add(path)
                if val:
                    source.secrets.add(val)
                return val
            problems.append(
                source.problem(
                    path,
                    f"environment variable {name} is not set",
                    f"export {name}=… before running, or write ${{{name}:-default}}",
                )
            )
            return whole

        return _REF.sub(repl, value)

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
