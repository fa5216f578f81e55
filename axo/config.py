"""The workflow file: pydantic models (nothing unknown accepted) and the loader.

This module knows the schema and turns every schema violation into a ``Problem`` with the
file, line, ``$.path``, what is wrong and how to fix it. Graph rules (unknown or cyclic
dependencies, workflows) live in ``axo.graph``; ``load_workflow`` runs both and raises one
``ConfigError`` with everything found.
"""

from __future__ import annotations

import datetime
import difflib
import os
import types
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from axo.errors import ConfigError, Problem
from axo.yamlsource import PathKey, Source, expand_env, load_yaml, parse_yaml

_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"


class _Model(BaseModel):
    # no NaN or infinity in any number: a timeout of .inf is no timeout at all
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


_URL_PATTERN = r"^https?://[^\s/?#]+([/?#]\S*)?$"  # a scheme httpx speaks, then a host


class OpenAIProvider(_Model):
    """Any OpenAI-compatible chat-completions endpoint."""

    type: Literal["openai"]
    base_url: str = Field("https://api.openai.com/v1", pattern=_URL_PATTERN)
    api_key: str | None = None
    model: str | None = None
    timeout: float = Field(60.0, gt=0)
    connect_timeout: float = Field(10.0, gt=0)
    max_retries: int = Field(3, ge=0, le=20)
    backoff: float = Field(0.5, ge=0)
    headers: dict[str, str] = {}


class AnthropicProvider(_Model):
    """Anthropic's Messages API."""

    type: Literal["anthropic"]
    base_url: str = Field("https://api.anthropic.com", pattern=_URL_PATTERN)
    api_key: str | None = None
    model: str | None = None
    timeout: float = Field(60.0, gt=0)
    connect_timeout: float = Field(10.0, gt=0)
    max_retries: int = Field(3, ge=0, le=20)
    backoff: float = Field(0.5, ge=0)
    version: str = "2023-06-01"


class LocalProvider(_Model):
    """A llama.cpp server that axo starts and stops itself (the offline default)."""

    type: Literal["local"]
    model: str | None = "smollm2"
    model_path: str | None = None
    n_ctx: int = Field(4096, ge=256)
    n_threads: int | None = Field(None, ge=1)
    seed: int | None = 0
    temperature: float = Field(0.0, ge=0)
    timeout: float = Field(300.0, gt=0)
    startup_timeout: float = Field(60.0, gt=0)


class FunctionProvider(_Model):
    """An in-process Python callable ``module:function`` taking a ChatRequest, returning text.

    Runs inside the agent's actor with no I/O; meant for tests, benchmarks and deterministic
    agents (routers, formatters).
    """

    type: Literal["function"]
    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    model: str | None = "function"


ProviderConfig = Annotated[
    OpenAIProvider | AnthropicProvider | LocalProvider | FunctionProvider,
    Field(discriminator="type"),
]

PROVIDER_TYPES = ("openai", "anthropic", "local", "function")
_PROVIDER_MODELS: dict[str, type[BaseModel]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "local": LocalProvider,
    "function": FunctionProvider,
}
# validated as a key type (not an after-validator) so it is reported with everything else
ProviderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
# its tools are named mcp__<server>__<tool>: no '__' inside, so that an allow-list's
# mcp__<server> grants that server's tools and no other's
McpServerName = Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+(_[A-Za-z0-9-]+)*$")]


class TokenBudget(_Model):
    per_call: int | None = Field(None, gt=0)
    per_execution: int | None = Field(None, gt=0)
    overflow_policy: Literal["abort", "warn", "summarize"] = "abort"


class Sampling(_Model):
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, gt=0)
    seed: int | None = None
    stop: list[str] = []


class Memory(_Model):
    checkpoint: bool = True  # checkpoint the agent's session after every step (durable runs)
    long_term: bool = False
    vector: bool = False
    embedder: Literal["static", "minilm"] = "static"
    recall_k: int = Field(5, ge=0)
    context: Literal["last_round", "full"] = "last_round"
    distill: bool = False


class PlanConfig(_Model):
    """A coordinator's planning setup; paths are relative to the workflow file."""

    domain: str
    problem: str | None = None
    capabilities: dict[str, list[str]] = {}
    max_rounds: int = Field(3, ge=0, le=20)


class Agent(_Model):
    id: str = Field(pattern=_ID_PATTERN)
    name: str | None = None
    role: Literal["agent", "worker", "coordinator"] = "agent"
    provider: str | None = None
    model: str | None = None
    system_prompt: str = ""
    depends_on: list[str] = []
    tools: list[str] = []
    tool_choice: str = "auto"
    token_budget: TokenBudget = TokenBudget()
    memory: Memory = Memory()
    sampling: Sampling = Sampling()
    activation_threshold: float | None = Field(None, gt=0)
    activation_decay: float = Field(0.0, ge=0)
    max_iterations: int = Field(10, ge=1, le=1000)
    context_tokens: int = Field(3072, ge=256)
    output_schema: dict[str, Any] | None = None
    plan: PlanConfig | None = None
    capabilities: list[str] = []

    @property
    def display_name(self) -> str:
        return self.name or self.id


class WorkflowSpec(_Model):
    id: str = Field(pattern=_ID_PATTERN)
    description: str = ""
    agents: list[str] = Field(min_length=1)
    entry: str | list[str] | None = None


class McpServer(_Model):
    transport: Literal["stdio", "streamable_http"] = "stdio"
    command: str | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    connect_timeout: float = Field(30.0, gt=0)
    call_timeout: float = Field(60.0, gt=0)


class Retention(_Model):
    keep_last: int | None = Field(None, ge=1)
    older_than_days: float | None = Field(None, gt=0)


class RunSettings(_Model):
    token_budget: int | None = Field(None, gt=0)
    timeout: float | None = Field(None, gt=0)
    retention: Retention = Retention()


class WorkflowFile(_Model):
    """The top level of a workflow file."""

    version: Literal[1] = 1
    name: str | None = None
    description: str = ""
    providers: dict[ProviderName, ProviderConfig] = {}
    agents: list[Agent] = Field(min_length=1)
    workflows: list[WorkflowSpec] = []
    mcp_servers: dict[McpServerName, McpServer] = {}
    run: RunSettings = RunSettings()


# ---------------------------------------------------------------- pydantic errors → Problems

_WANT = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_BOUNDS = {
    "greater_than": "> {gt}",
    "greater_than_equal": ">= {ge}",
    "less_than": "< {lt}",
    "less_than_equal": "<= {le}",
}
_GOT: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (list, "a list"),
    (dict, "a mapping"),
    (datetime.date, "a date"),
)


def _type_of(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return next((name for t, name in _GOT if isinstance(value, t)), type(value).__name__)


def _show(value: Any) -> str:
    """A value as the user wrote it, shortened (secrets are redacted later, by the Source)."""
    if isinstance(value, str):
        return f"'{value[:60]}'"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value)[:60]


def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _members(ann: Any) -> list[Any]:
    """The alternatives of a union other than None; [] when ``ann`` is not a union."""
    if get_origin(ann) in (Union, types.UnionType):
        return [a for a in get_args(ann) if a is not type(None)]
    return []


def _strip(ann: Any) -> Any:
    """``Annotated[X, …]`` and ``X | None`` → ``X``."""
    while True:
        if get_origin(ann) is Annotated:
            ann = get_args(ann)[0]
        elif len(members := _members(ann)) == 1:
            ann = members[0]
        else:
            return ann


def _describe(ann: Any) -> str:
    ann = _strip(ann)
    if get_origin(ann) is list:
        return "a list"
    if get_origin(ann) is dict or _is_model(ann):
        return "a mapping"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        ann, str(ann)
    )


@dataclass(frozen=True)
class _Where:
    """Where a pydantic error points in the YAML.

    Attributes:
        path: the YAML path (pydantic's union tags removed).
        fields: the valid keys of the mapping holding the last part (for suggestions).
        union: the alternatives, when the error is about a whole union-typed value.
    """

    path: PathKey
    fields: tuple[str, ...] = ()
    union: tuple[Any, ...] = ()


def _locate(loc: tuple[Any, ...]) -> _Where:
    """Follow pydantic's location through the schema, dropping the tags it inserts."""
    path: list[str | int] = []
    ann: Any = WorkflowFile
    fields: tuple[str, ...] = ()
    union: tuple[Any, ...] = ()
    for part in loc:
        ann, union = _strip(ann), ()
        if part == "[key]":
            continue
        members = _members(ann)
        if members and all(_is_model(m) for m in members):  # the providers' `type` tag
            ann = _PROVIDER_MODELS.get(str(part))
            continue
        if members:  # pydantic names the alternative it tried: 'str', 'list[str]'
            ann, union = None, tuple(members)
            continue
        fields = ()
        if _is_model(ann):
            fields = tuple(ann.model_fields)
            path.append(str(part))
            ann = ann.model_fields[part].annotation if part in ann.model_fields else None
        elif get_origin(ann) is dict:
            path.append(str(part))
            ann = get_args(ann)[1]
        else:
            path.append(part)
            ann = get_args(ann)[0] if get_origin(ann) is list else None
    return _Where(tuple(path), fields, union)


def _quoted_scalar(value: Any) -> bool:
    """Whether ``value`` is a string YAML would read as a number or boolean without quotes."""
    if not isinstance(value, str) or not value.strip():
        return False
    try:
        return isinstance(yaml.safe_load(value), int | float)
    except yaml.YAMLError:
        return False


def _unread_number(value: Any) -> bool:
    """A number YAML 1.1 reads as a string: an exponent without a dot or a sign (``1e3``)."""
    if not isinstance(value, str) or _quoted_scalar(value):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return "e" in value.lower() and value.strip().lower() not in ("inf", "-inf", "nan")


def _problem_from(err: Any, where: _Where, source: Source) -> Problem:
    loc, kind, value = where.path, err["type"], err.get("input")
    ctx = err.get("ctx") or {}
    key = str(loc[-1]) if loc else "$"
    name = next((p for p in reversed(loc) if isinstance(p, str)), "$")
    subject = f"each item of '{name}'" if loc and isinstance(loc[-1], int) else f"'{name}'"
    if err["loc"] and err["loc"][-1] == "[key]":
        if kind == "string_pattern_mismatch" and loc[0] == "mcp_servers":
            return source.problem(
                loc,
                f"MCP server name '{key}' may only use letters, digits, '-' and single '_' "
                "between them (its tools are named mcp__<server>__<tool>)",
                "rename it",
            )
        if kind == "string_pattern_mismatch":
            return source.problem(
                loc, f"provider name '{key}' may only use letters, digits, '_' and '-'", "rename it"
            )
        return source.problem(loc, f"the name {key} is not a string", f"quote it: '{key}':")
    if kind in ("extra_forbidden", "invalid_key"):
        near = difflib.get_close_matches(key, where.fields, n=1, cutoff=0.6)
        fix = (
            f"did you mean '{near[0]}'?"
            if near
            else "remove it; valid keys here: " + ", ".join(sorted(where.fields))
            if where.fields
            else "remove it"
        )
        return source.problem(loc, f"unknown key '{key}'", fix)
    if kind == "missing":
        where_to = "here" if len(loc) > 1 else "at the top level"
        return source.problem(loc, f"missing required key '{key}'", f"add '{key}: …' {where_to}")
    if where.union or kind in _WANT:
        want = " or ".join(map(_describe, where.union)) if where.union else _WANT[kind]
        fix = f"write {subject} as {want}"
        if loc in source.env_paths:
            fix += " (a value from the environment is always a string)"
        elif _quoted_scalar(value) and want in ("an integer", "a number", "true or false"):
            fix = f"remove the quotes around {value} so that YAML reads it as {want}"
        elif _unread_number(value) and want in ("an integer", "a number"):
            return source.problem(
                loc,
                f"YAML reads {value} as text, not as a number",
                f"write it with a dot and a signed exponent ({float(value):.1e}) or in full "
                f"({float(value):g})",
            )
        elif isinstance(value, bool) and "a string" in want:
            fix = (
                "put it in quotes: without them YAML reads on, off, yes, no, true and false "
                "as true or false"
            )
        elif isinstance(value, str) and want == "a list":
            fix = f"write it as a list: {key}: [{value}]"
        elif isinstance(value, dict) and want == "a list":
            fix = f"write {subject} as a list: begin each item with '- '"
        return source.problem(loc, f"expected {want}, got {_type_of(value)}", fix)
    if kind == "union_tag_invalid":
        tag = str(ctx.get("tag"))
        near = difflib.get_close_matches(tag, PROVIDER_TYPES, n=1)
        fix = f"did you mean '{near[0]}'?" if near else "use one of: " + ", ".join(PROVIDER_TYPES)
        return source.problem((*loc, "type"), f"unknown provider type '{tag}'", fix)
    if kind == "union_tag_not_found":
        return source.problem(
            loc,
            "missing required key 'type'",
            "add 'type:' with one of: " + ", ".join(PROVIDER_TYPES),
        )
    if kind == "literal_error":
        return source.problem(
            loc, f"{_show(value)} is not a valid {name}", f"use one of: {ctx.get('expected', '')}"
        )
    if kind == "string_pattern_mismatch":
        if name == "base_url":
            return source.problem(
                loc,
                f"{_show(value)} is not an http:// or https:// URL",
                "write the scheme and the host, e.g. http://127.0.0.1:8080/v1",
            )
        if name == "function":
            return source.problem(
                loc,
                f"{_show(value)} is not a 'module:function' import path",
                "write it as package.module:function",
            )
        return source.problem(
            loc,
            f"{_show(value)} is not a valid {name}",
            "use letters, digits, '_' and '-', starting with a letter or '_'",
        )
    if kind in _BOUNDS:
        bound = _BOUNDS[kind].format(**ctx)
        return source.problem(
            loc, f"must be {bound}, got {_show(value)}", f"set {subject} to a value {bound}"
        )
    if kind == "too_short":
        return source.problem(loc, "must not be empty", f"list at least one item under '{name}'")
    message = str(ctx.get("error", err["msg"])) if kind == "value_error" else err["msg"]
    return source.problem(loc, f"invalid value: {message}", "correct the value")


def validate_source(source: Source) -> tuple[WorkflowFile | None, list[Problem]]:
    """Validate parsed YAML against the schema; return the model (if valid) and problems."""
    if not isinstance(source.data, dict):
        return None, [
            source.problem(
                (),
                f"expected a mapping at the top, got {_type_of(source.data)}",
                "start the file with 'agents:' (and 'providers:')",
            )
        ]
    try:
        return WorkflowFile.model_validate(source.data), []
    except ValidationError as exc:
        located = [(e, _locate(tuple(e["loc"]))) for e in exc.errors(include_url=False)]
    # a union value that matched one alternative's shape: keep only that alternative's errors
    deeper = {w.path[:k] for _, w in located for k in range(len(w.path))}
    problems: list[Problem] = []
    for err, where in located:
        if where.union and where.path in deeper:
            continue
        p = _problem_from(err, where, source)
        if p not in problems:
            problems.append(p)
    return None, problems


def read_source(
    path: str | os.PathLike[str] | None = None,
    *,
    text: str | None = None,
    env: dict[str, str] | None = None,
) -> tuple[Source, list[Problem]]:
    """Parse a workflow file (or text) and expand ``${VAR}``.

    Returns:
        the source, and the problems that did not stop parsing (duplicate keys, unset or
        malformed variables).

    Raises:
        ConfigError: the file cannot be parsed at all.
    """
    if text is not None:
        source = parse_yaml(text, file=os.fspath(path) if path else "<string>", collect=True)
    else:
        assert path is not None
        source = load_yaml(path, collect=True)
    return source, [*source.problems, *expand_env(source, env)]


def raise_if(problems: list[Problem]) -> None:
    """Raise one ConfigError with every problem, in file order; do nothing if there are none."""
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.path))
        raise ConfigError(problems)
