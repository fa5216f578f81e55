"""A loaded, validated workflow: the agents of one run, their providers and their DAG.

``load_workflow`` is the one entry point from a file: YAML → schema → graph rules, with every
problem reported at once in a ``ConfigError``. The ``Workflow`` it returns is immutable and
knows which agents run (a named workflow's subset, in declaration order), their dependencies,
entry and sink agents, layers, and the provider each agent uses.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import networkx as nx

from axo.config import (
    Agent,
    FunctionProvider,
    LocalProvider,
    ProviderConfig,
    WorkflowFile,
    raise_if,
    read_source,
    validate_source,
)
from axo.errors import Problem, UsageError
from axo.graph import build_graph, check_graph, layers
from axo.yamlsource import Source, redact

DEFAULT_PROVIDER = "local"


@dataclass(frozen=True, eq=False)  # identity: hashable, usable as a cache key
class Workflow:
    """The agents of one runnable workflow, validated.

    Attributes:
        file: the file it came from.
        config: the whole validated file.
        agents: the agents that run, in declaration order.
        workflow_id: the named workflow chosen, or None for "all agents".
        secrets: values expanded from the environment; redacted wherever text leaves axo.
    """

    file: str
    config: WorkflowFile
    agents: tuple[Agent, ...]
    workflow_id: str | None = None
    secrets: frozenset[str] = field(default_factory=frozenset)

    @cached_property
    def graph(self) -> nx.DiGraph:
        return build_graph(self.agents)

    @cached_property
    def by_id(self) -> Mapping[str, Agent]:
        return {a.id: a for a in self.agents}

    @property
    def ids(self) -> list[str]:
        return [a.id for a in self.agents]

    @property
    def entries(self) -> list[str]:
        """Agents the run's input starts (workers wait for a coordinator's plan instead)."""
        return [a.id for a in self.agents if not a.depends_on and a.role != "worker"]

    @property
    def sinks(self) -> list[str]:
        """Agents nothing depends on, whose outputs are the run's (workers excluded: their
        work reaches the agents after their coordinator)."""
        return list(self._sinks)

    @cached_property
    def _sinks(self) -> tuple[str, ...]:
        g = self.graph
        return tuple(a.id for a in self.agents if g.out_degree(a.id) == 0 and a.role != "worker")

    @cached_property
    def labels(self) -> tuple[tuple[str, str], ...]:
        """(id, display name) of each agent, in order (secrets in names shown as ***)."""
        return tuple((a.id, self.redact(a.display_name)) for a in self.agents)

    @cached_property
    def distillers(self) -> tuple[Agent, ...]:
        """Agents that turn their session into long-term facts at the end of a run."""
        return tuple(a for a in self.agents if a.memory.distill and a.memory.long_term)

    @cached_property
    def remote_providers(self) -> tuple[str, ...]:
        """The providers the agents use that are not in-process functions, each once."""
        names = dict.fromkeys(self.provider_name(a) for a in self.agents)
        return tuple(n for n in names if not isinstance(self.provider_config(n), FunctionProvider))

    @property
    def edges(self) -> int:
        return self.graph.number_of_edges()

    def layers(self) -> list[list[str]]:
        return layers(self.graph)

    def provider_name(self, agent: Agent) -> str:
        if agent.provider:
            return agent.provider
        if len(self.config.providers) == 1:
            return next(iter(self.config.providers))
        return DEFAULT_PROVIDER

    def provider_config(self, name: str) -> ProviderConfig:
        if name in self.config.providers:
            return self.config.providers[name]
        if name == DEFAULT_PROVIDER:
            return LocalProvider(type="local")
        raise KeyError(name)

    def summary(self) -> str:
        n_layers = len(self.layers())
        label = f"workflow '{self.workflow_id}'" if self.workflow_id else "all agents"
        return (
            f"{label}: {len(self.agents)} agents, {self.edges} edges, {n_layers} layers; "
            f"entry: {', '.join(self.entries)}; sinks: {', '.join(self.sinks)}"
        )

    def redact(self, text: str) -> str:
        """Replace every secret value in ``text`` with ``***`` (the loader's rule)."""
        return redact(text, self.secrets)

    def select(self, workflow_id: str | None) -> Workflow:
        """The same file narrowed to one named workflow (None: the file's default)."""
        cfg = self.config
        if workflow_id is None:
            if len(cfg.workflows) > 1:
                names = ", ".join(w.id for w in cfg.workflows)
                raise UsageError(
                    self.redact(
                        f"{self.file} defines several workflows ({names}) "
                        f"— choose one with --workflow ID (workflow_id= in Python)"
                    )
                )
            if not cfg.workflows:
                return Workflow(self.file, cfg, cfg.agents, None, self.secrets)
            workflow_id = cfg.workflows[0].id
        spec = next((w for w in cfg.workflows if w.id == workflow_id), None)
        if spec is None:
            names = [w.id for w in cfg.workflows]
            near = difflib.get_close_matches(workflow_id, names, n=1)
            if not names:
                fix = "the file defines no workflows; leave out --workflow to run every agent"
            else:
                fix = (f"did you mean '{near[0]}'? " if near else "") + (
                    f"Workflows in the file: {', '.join(names)}"
                )
            raise UsageError(self.redact(f"{self.file}: no workflow '{workflow_id}' — {fix}"))
        members = set(spec.agents)
        agents = tuple(a for a in cfg.agents if a.id in members)
        return Workflow(self.file, cfg, agents, spec.id, self.secrets)


def _provider_problems(source: Source) -> list[Problem]:
    data = source.data if isinstance(source.data, dict) else {}
    providers = data.get("providers")
    names = [str(k) for k in providers] if isinstance(providers, dict) else []
    agents = data.get("agents")
    problems = []
    for i, a in enumerate(agents if isinstance(agents, list) else []):
        name = a.get("provider") if isinstance(a, dict) else None
        if isinstance(name, str) and name not in names and name != DEFAULT_PROVIDER:
            near = difflib.get_close_matches(name, names, n=1)
            fix = (
                f"did you mean '{near[0]}'?"
                if near
                else f"define it under providers: (defined: {', '.join(names) or 'none'}), "
                f"or use '{DEFAULT_PROVIDER}' for the embedded model"
            )
            problems.append(
                source.problem(
                    ("agents", i, "provider"),
                    f"agent '{a.get('id')}' uses undefined provider '{name}'",
                    fix,
                )
            )
    return problems


def _role_problems(source: Source) -> list[Problem]:
    data = source.data if isinstance(source.data, dict) else {}
    agents = data.get("agents") if isinstance(data.get("agents"), list) else []
    workers = {
        a["id"]
        for a in agents
        if isinstance(a, dict) and a.get("role") == "worker" and isinstance(a.get("id"), str)
    }
    problems = []
    for i, a in enumerate(agents):
        if not isinstance(a, dict):
            continue
        if a.get("role") == "coordinator" and not a.get("plan"):
            problems.append(
                source.problem(
                    ("agents", i, "role"),
                    f"coordinator '{a.get('id')}' has no plan",
                    "add plan: {domain: path/to/domain.yaml} (and a problem file)",
                )
            )
        if a.get("plan") and a.get("role") != "coordinator":
            problems.append(
                source.problem(
                    ("agents", i, "plan"),
                    f"agent '{a.get('id')}' has a plan but is not a coordinator",
                    "add role: coordinator, or remove plan:",
                )
            )
        if a.get("role") == "worker" and a.get("depends_on"):
            problems.append(
                source.problem(
                    ("agents", i, "depends_on"),
                    f"worker '{a.get('id')}' has dependencies",
                    "workers run the steps a coordinator awards them; remove depends_on",
                )
            )
        needs = a.get("depends_on")
        for j, d in enumerate(needs if isinstance(needs, list) else []):  # else: the schema's
            if isinstance(d, str) and d in workers:
                problems.append(
                    source.problem(
                        ("agents", i, "depends_on", j),
                        f"'{a.get('id')}' depends on worker '{d}'",
                        "depend on the coordinator instead: it completes when its plan has",
                    )
                )
    return problems


def _threshold_problems(source: Source) -> list[Problem]:
    """An activation threshold the signal can never reach: each dependency that completes
    adds 0.5 (and decay only takes away), so at most 0.5 × its dependencies; an agent without
    dependencies starts with the run and has no threshold to reach."""
    data = source.data if isinstance(source.data, dict) else {}
    agents = data.get("agents") if isinstance(data.get("agents"), list) else []
    problems = []
    for i, a in enumerate(agents):
        if not isinstance(a, dict):
            continue
        threshold = a.get("activation_threshold")
        needs = a.get("depends_on")
        if not isinstance(needs, list | None):
            continue
        n = len({d for d in needs or [] if isinstance(d, str)})
        decay = a.get("activation_decay")
        number = isinstance(threshold, int | float) and not isinstance(threshold, bool)
        all_of = 0.5 * n if threshold is None else threshold if number else None
        if (
            isinstance(decay, int | float)
            and not isinstance(decay, bool)
            and decay > 0
            and n >= 2
            and all_of is not None
            and all_of >= 0.5 * n - 1e-9
        ):
            problems.append(
                source.problem(
                    ("agents", i, "activation_decay"),
                    f"with activation_decay, '{a.get('id')}' waiting for all {n} dependencies "
                    f"({0.5 * n:g}) fires only if they complete at the same instant: the earlier "
                    "signals have decayed when the last arrives",
                    f"set activation_threshold below {0.5 * n:g} (a quorum that decay keeps "
                    "fresh), or remove activation_decay",
                )
            )
        if not number:
            continue  # absent, or the schema's to report
        where = ("agents", i, "activation_threshold")
        if n == 0:
            problems.append(
                source.problem(
                    where,
                    f"agent '{a.get('id')}' has no dependencies: it starts with the run, "
                    "so a threshold never applies",
                    "remove activation_threshold, or add depends_on",
                )
            )
        elif threshold > 0.5 * n + 1e-9:
            deps = f"{n} dependenc{'y' if n == 1 else 'ies'}"
            problems.append(
                source.problem(
                    where,
                    f"{threshold:g} can never be reached: '{a.get('id')}' has {deps}, each "
                    f"adding 0.5 when it completes (at most {0.5 * n:g})",
                    f"set it to at most {0.5 * n:g}, or remove it (the default waits for all)",
                )
            )
    return problems


def _resource_problems(source: Source, known_tools: frozenset[str] | None) -> list[Problem]:
    """What the schema cannot see but a run would trip on: local model names, MCP servers
    without a command or URL, invalid output schemas — and, with ``known_tools`` (the CLI,
    where no other tools can be added), allow-list entries that are neither among them nor
    a configured MCP server's, and function providers whose module cannot be found."""
    data = source.data if isinstance(source.data, dict) else {}
    problems: list[Problem] = []
    providers = data.get("providers") if isinstance(data.get("providers"), dict) else {}
    for name, cfg in providers.items():
        if not isinstance(cfg, dict):
            continue
        if cfg.get("type") == "local" and isinstance(cfg.get("model_path"), str):
            problems += _model_file_problems(source, name, cfg["model_path"])
        if cfg.get("type") == "local" and cfg.get("model_path") is None:
            from axo.llm.models import KNOWN_MODELS

            model = cfg.get("model", "smollm2")
            if isinstance(model, str) and model.strip().lower() not in KNOWN_MODELS:
                problems.append(
                    source.problem(
                        ("providers", name, "model"),
                        f"unknown local model '{model}'",
                        f"use one of {', '.join(sorted(KNOWN_MODELS))}, or give model_path "
                        "to a GGUF file",
                    )
                )
        if (
            known_tools is not None
            and cfg.get("type") == "function"
            and isinstance(cfg.get("function"), str)
            and _ENTRY.fullmatch(cfg["function"])  # else the schema has said what is wrong
        ):
            problems += _function_problems(source, name, cfg["function"])
    servers = data.get("mcp_servers") if isinstance(data.get("mcp_servers"), dict) else {}
    for name, cfg in servers.items():
        if not isinstance(cfg, dict):
            continue
        transport = cfg.get("transport", "stdio")
        needed = "command" if transport == "stdio" else "url"
        if transport in ("stdio", "streamable_http") and not cfg.get(needed):
            problems.append(
                source.problem(
                    ("mcp_servers", name),
                    f"MCP server '{name}' ({transport}) has no {needed}",
                    f"add {needed}: to start or reach the server",
                )
            )
        # what the other transport uses would be silently ignored
        unused = ("url", "headers") if transport == "stdio" else ("command", "args", "env", "cwd")
        for key in unused if transport in ("stdio", "streamable_http") else ():
            if cfg.get(key):
                other = "streamable_http" if transport == "stdio" else "stdio"
                problems.append(
                    source.problem(
                        ("mcp_servers", name, key),
                        f"'{key}' is for {other} servers, and '{name}' is a {transport} one",
                        f"remove it, or set transport: {other}",
                    )
                )
    agents = data.get("agents") if isinstance(data.get("agents"), list) else []
    for i, a in enumerate(agents):
        if not isinstance(a, dict):
            continue
        tools = a.get("tools") if isinstance(a.get("tools"), list) else []
        for j, entry in enumerate(tools):
            if not isinstance(entry, str):
                continue
            if known_tools is None or entry == "*":
                continue  # a caller can add tools, MCP ones too (``run(tools=…)``)
            if entry.startswith("mcp__"):
                server = entry[len("mcp__") :].split("__", 1)[0]
                if server not in servers:
                    problems.append(
                        source.problem(
                            ("agents", i, "tools", j),
                            f"'{entry}' names MCP server '{server}', which is not configured",
                            "add it under mcp_servers:, or fix the name",
                        )
                    )
            elif entry not in known_tools:
                near = difflib.get_close_matches(entry, sorted(known_tools), n=1)
                problems.append(
                    source.problem(
                        ("agents", i, "tools", j),
                        f"unknown tool '{entry}'",
                        f"did you mean '{near[0]}'?"
                        if near
                        else f"built-in tools: {', '.join(sorted(known_tools))}",
                    )
                )
        memory = a.get("memory") if isinstance(a.get("memory"), dict) else {}
        durable = memory.get("long_term") is True or memory.get("vector") is True
        for j, entry in enumerate(tools):
            if entry in ("remember", "recall") and not durable:
                problems.append(
                    source.problem(
                        ("agents", i, "tools", j),
                        f"{entry} works on long-term memory, which is off for this agent (a "
                        "remembered fact would be gone after the run)",
                        "add long_term: true under the agent's memory:, or remove the tool",
                    )
                )
        if memory.get("distill") is True and memory.get("long_term") is not True:
            problems.append(
                source.problem(
                    ("agents", i, "memory", "distill"),
                    "distill turns the session into long-term facts, but long_term is off",
                    "add long_term: true to memory:, or remove distill",
                )
            )
        schema = a.get("output_schema")
        if isinstance(schema, dict):
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in exc.path)
                problems.append(
                    source.problem(
                        ("agents", i, "output_schema"),
                        f"not a valid JSON Schema: {exc.message} (at output_schema{where})",
                        "fix the schema (JSON Schema draft 2020-12)",
                    )
                )
    return problems


_ENTRY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def _model_file_problems(source: Source, provider: str, model_path: str) -> list[Problem]:
    """A local provider's ``model_path`` that names no readable GGUF file (a run would stop
    before its first agent)."""
    from axo.llm.models import check_model_file

    try:
        check_model_file(model_path)
    except UsageError as e:
        return [
            source.problem(
                ("providers", provider, "model_path"),
                str(e),
                "give the path of a GGUF file (a relative path is read from the current "
                "folder), or remove model_path to use the model named by model:",
            )
        ]
    return []


def _function_problems(source: Source, provider: str, entry: str) -> list[Problem]:
    """A function provider whose ``module:function`` cannot be imported or named. The module
    is imported (a run imports it too) only when it can be found."""
    module, _, attribute = entry.partition(":")
    where = ("providers", provider, "function")
    if not _importable(module):
        return [
            source.problem(
                where,
                f"no module '{module}' can be imported",
                "check the name, and that the module is on the Python path",
            )
        ]
    import importlib

    try:
        found = getattr(importlib.import_module(module), attribute, None)
    except Exception as e:  # the user's module failed while being imported
        return [
            source.problem(
                where,
                f"importing '{module}' failed: {type(e).__name__}: {e}",
                "fix the module so that it imports",
            )
        ]
    if not callable(found):
        what = "has no attribute" if found is None else "has a non-callable attribute"
        return [
            source.problem(
                where,
                f"module '{module}' {what} '{attribute}'",
                "name a function that takes a ChatRequest and returns the reply's text",
            )
        ]
    return []


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _tool_choice_problems(source: Source) -> list[Problem]:
    data = source.data if isinstance(source.data, dict) else {}
    agents = data.get("agents")
    problems = []
    for i, a in enumerate(agents if isinstance(agents, list) else []):
        if not isinstance(a, dict) or not isinstance(a.get("tool_choice"), str):
            continue
        choice, tools = a["tool_choice"], a.get("tools") or []
        if choice in ("auto", "required", "none") or not isinstance(tools, list):
            continue
        if choice not in tools:
            problems.append(
                source.problem(
                    ("agents", i, "tool_choice"),
                    f"tool_choice '{choice}' is not one of the agent's tools",
                    "use auto, required, none, or a tool listed under tools:",
                )
            )
    return problems


def load_file(
    path: str | os.PathLike[str],
    *,
    env: dict[str, str] | None = None,
    text: str | None = None,
    known_tools: Iterable[str] | None = None,
) -> Workflow:
    """Load and validate a whole workflow file (every agent, no workflow selected).

    Args:
        path: the YAML file (with ``text``: only the name used in messages).
        env: the environment for ``${VAR}`` expansion (default ``os.environ``).
        text: YAML text to use instead of reading ``path``.
        known_tools: every tool a run can have besides MCP servers' (the CLI passes the
            built-in ones): then an allow-list naming another is an error here, and so is a
            function provider whose module cannot be found. None (the Python API, where
            ``run(tools=…)`` adds tools): checked when the run starts.

    Raises:
        ConfigError: every problem found in the file, at once.
    """
    source, problems = read_source(path, text=text, env=env)
    cfg, schema_problems = validate_source(source)
    problems += schema_problems
    problems += check_graph(source)
    problems += _provider_problems(source)
    problems += _tool_choice_problems(source)
    problems += _role_problems(source)
    problems += _threshold_problems(source)
    problems += _resource_problems(source, None if known_tools is None else frozenset(known_tools))
    raise_if(problems)
    assert cfg is not None
    workflow = Workflow(source.file, cfg, cfg.agents, None, frozenset(source.secrets))
    if any(a.role == "coordinator" for a in cfg.agents):  # their domain files, checked too
        from axo.runtime.specs import check_plans

        check_plans(workflow, source)
    return workflow


def load_workflow(
    path: str | os.PathLike[str],
    workflow: str | None = None,
    *,
    env: dict[str, str] | None = None,
    text: str | None = None,
    known_tools: Iterable[str] | None = None,
) -> Workflow:
    """Load, validate and select the workflow to run.

    Raises:
        ConfigError: every problem found in the file, at once.
        UsageError: ``workflow`` names no workflow of the file, or the file defines several
            and none was chosen.
    """
    return load_file(path, env=env, text=text, known_tools=known_tools).select(workflow)
