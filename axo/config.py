"""The workflow file: pydantic models (nothing unknown accepted) and the loader.

This module knows the schema and turns every schema violation into a ``Problem`` with the
file, line, ``$.path``, what is wrong and how to fix it. Graph rules (unknown or cyclic
dependencies, workflows) live in ``axo.graph``; ``load_workflow`` runs both and raises one
``ConfigError`` with everything found.
"""

from __future__ import annotations

import difflib
import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from axo.errors import ConfigError, Problem
from axo.yamlsource import PathKey, Source, expand_env, load_yaml, parse_yaml

_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class OpenAIProvider(_Model):
    """Any OpenAI-compatible chat-completions endpoint."""

    type: Literal["openai"]
    base_url: str = "https://api.openai.com/v1"
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
    base_url: str = "https://api.anthropic.com"
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
    session: bool = True
    checkpoint: bool = True
    long_term: bool = False
    vector: bool = False
    recall_k: int = Field(5, ge=0)


class Agent(_Model):
    id: str = Field(pattern=_ID_PATTERN)
    name: str | None = None
    role: Literal["agent", "worker", "coordinator"] = "agent"
    provider: str | None = None
    model: str | None = None
    system_prompt: str = ""
    depends_on: list[str] = []
    tools: list[str] = []
    token_budget: TokenBudget = TokenBudget()
    memory: Memory = Memory()
    sampling: Sampling = Sampling()
    activation_threshold: float | None = Field(None, gt=0)
    activation_decay: float = Field(0.0, ge=0)
    max_iterations: int = Field(10, ge=1, le=1000)
    context_tokens: int = Field(3072, ge=256)

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


class RunSettings(_Model):
    token_budget: int | None = Field(None, gt=0)
    timeout: float | None = Field(None, gt=0)


class WorkflowFile(_Model):
    """The top level of a workflow file."""

    version: Literal[1] = 1
    name: str | None = None
    description: str = ""
    providers: dict[str, ProviderConfig] = {}
    agents: list[Agent] = Field(min_length=1)
    workflows: list[WorkflowSpec] = []
    mcp_servers: dict[str, McpServer] = {}
    run: RunSettings = RunSettings()

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"provider name {name!r} may only use letters, digits, _ and -")
        return v


# ---------------------------------------------------------------- pydantic errors → Problems

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "int_from_float": "an integer",
}


def _type_of(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "a list", dict: "a mapping",
    }.get(type(value), type(value).__name__)


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at the mapping that contains ``loc[-1]`` (for suggestions)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            # a discriminated union member or a dict value: the tag names the model
            if isinstance(part, str) and part in PROVIDER_TYPES:
                current = {"openai": OpenAIProvider, "anthropic": AnthropicProvider,
                           "local": LocalProvider, "function": FunctionProvider}[part]
                continue
            if current is WorkflowFile and part in ("providers", "mcp_servers"):
                continue
            return []
        ann = fields[part].annotation
        current = _model_in(ann)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _clean_loc(loc: tuple[Any, ...], data: Any) -> PathKey:
    """Drop pydantic's union-member tags from a location so it matches the YAML."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and isinstance(part, str):
            continue  # a tag like 'openai' inserted by the discriminated union
        out.append(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return tuple(out)


def _problem_from(err: Any, source: Source) -> Problem:
    loc = _clean_loc(tuple(err["loc"]), source.data)
    kind = err["type"]
    value = err.get("input")
    key = loc[-1] if loc else "$"
    if kind == "extra_forbidden":
        valid = _fields_at(WorkflowFile, tuple(err["loc"]))
        near = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
        fix = f"did you mean '{near[0]}'?" if near else "remove it"
        if valid:
            fix += " Valid keys here: " + ", ".join(sorted(valid))
        return source.problem(loc, f"unknown key '{key}'", fix)
    if kind == "missing":
        return source.problem(loc, f"missing required key '{key}'", f"add '{key}: …' here")
    if kind in _TYPE_NAMES:
        want = _TYPE_NAMES[kind]
        return source.problem(loc, f"expected {want}, got {_type_of(value)}",
                              f"write '{key}' as {want}")
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        near = difflib.get_close_matches(str(tag), PROVIDER_TYPES, n=1)
        fix = f"did you mean '{near[0]}'? " if near else ""
        return source.problem((*loc, "type"), f"unknown provider type '{tag}'",
                              fix + "use one of: " + ", ".join(PROVIDER_TYPES))
    if kind == "union_tag_not_found":
        return source.problem(loc, "missing required key 'type'",
                              "add 'type:' with one of: " + ", ".join(PROVIDER_TYPES))
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        shown = f"'{value}'" if isinstance(value, str) and value not in source.secrets else "value"
        return source.problem(loc, f"{shown} is not allowed", f"use one of: {expected}")
    if kind == "string_pattern_mismatch":
        if key == "function":
            return source.problem(loc, "not a 'module:function' import path",
                                  "write it as package.module:function")
        return source.problem(loc, "is not a valid identifier",
                              "use letters, digits, '_' and '-', starting with a letter or '_'")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        ctx = err.get("ctx", {})
        bound = {"greater_than": "> {gt}", "greater_than_equal": ">= {ge}",
                 "less_than": "< {lt}", "less_than_equal": "<= {le}"}[kind].format(**ctx)
        return source.problem(loc, f"must be {bound}", f"set '{key}' to a value {bound}")
    if kind == "too_short":
        return source.problem(loc, "must not be empty", f"list at least one item under '{key}'")
    if kind == "value_error":
        msg = str(err.get("ctx", {}).get("error", err["msg"]))
        return source.problem(loc, msg, "rename it")
    return source.problem(loc, err["msg"].lower(), "see the README's workflow reference")


def validate_source(source: Source) -> tuple[WorkflowFile | None, list[Problem]]:
    """Validate parsed YAML against the schema; return the model (if valid) and problems."""
    if not isinstance(source.data, dict):
        return None, [source.problem((), f"expected a mapping at the top, got "
                                         f"{_type_of(source.data)}",
                                     "start the file with 'agents:' (and 'providers:')")]
    try:
        return WorkflowFile.model_validate(source.data), []
    except ValidationError as exc:
        problems = [_problem_from(e, source) for e in exc.errors(include_url=False)]
        seen: set[tuple[Any, ...]] = set()
        unique = []
        for p in problems:
            k = (p.line, p.path, p.message)
            if k not in seen:
                seen.add(k)
                unique.append(p)
        return None, unique


def read_source(path: str | os.PathLike[str] | None = None, *, text: str | None = None,
                env: dict[str, str] | None = None) -> tuple[Source, list[Problem]]:
    """Parse a workflow file (or text) and expand ``${VAR}``; return it with env problems."""
    if text is not None:
        source = parse_yaml(text, file=os.fspath(path) if path else "<string>")
    else:
        assert path is not None
        source = load_yaml(path)
    return source, expand_env(source, env)


def raise_if(problems: list[Problem]) -> None:
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.path))
        raise ConfigError(problems)
