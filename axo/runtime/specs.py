"""What the run actor is told about a workflow: agent specs and the StartRun template.

Built from the validated workflow and the tool registry (allow-lists resolved to tool
schemas, budgets, memory settings, a coordinator's domain and problem read and checked), once
per workflow and set of tools, then reused for every run.
"""

from __future__ import annotations

import difflib
import os
import weakref

import msgspec

from axo.config import Agent, FunctionProvider, raise_if
from axo.errors import ConfigError, Problem
from axo.messages import AgentSpec, PlanSpec, StartRun
from axo.tools.registry import ToolRegistry
from axo.workflow import Workflow
from axo.yamlsource import Source, load_yaml


def agent_specs(workflow: Workflow, registry: ToolRegistry) -> tuple[AgentSpec, ...]:
    specs = []
    for a in workflow.agents:
        tools = tuple(t.spec for t in registry.allowed(a.tools))
        pname = workflow.provider_name(a)
        pcfg = workflow.provider_config(pname)
        function = pcfg.function if isinstance(pcfg, FunctionProvider) else None
        model = a.model or getattr(pcfg, "model", None) or ""
        temperature = a.sampling.temperature
        if temperature is None:
            temperature = getattr(pcfg, "temperature", None)
        seed = a.sampling.seed if a.sampling.seed is not None else getattr(pcfg, "seed", None)
        specs.append(
            AgentSpec(
                id=a.id,
                name=workflow.redact(a.display_name),
                system_prompt=a.system_prompt,
                model=model,
                provider=pname,
                function=function,
                temperature=temperature,
                top_p=a.sampling.top_p,
                max_tokens=a.sampling.max_tokens,
                seed=seed,
                stop=tuple(a.sampling.stop),
                context_tokens=a.context_tokens,
                max_iterations=a.max_iterations,
                tool_specs=tools,
                tool_choice=a.tool_choice,
                per_call=a.token_budget.per_call,
                per_execution=a.token_budget.per_execution,
                overflow_policy=a.token_budget.overflow_policy,
                output_schema=a.output_schema,
                context=a.memory.context,
                recall_k=a.memory.recall_k if (a.memory.long_term or a.memory.vector) else 0,
                role=a.role,
                plan=_plan_spec(workflow, a),
                capabilities=tuple(a.capabilities),
            )
        )
    return tuple(specs)


def check_plans(workflow: Workflow, source: Source | None = None) -> None:
    """Read and check every coordinator's domain and problem files (``axo validate`` and
    loading a workflow file do, so a broken domain is found before anything runs); with the
    workflow's ``source``, also that each key of ``plan.capabilities`` names an operator of
    the domain (a misspelt one would require nothing of the workers).

    Raises:
        ConfigError: what is wrong, located in the domain or problem file, or in the
            workflow file for a capability.
    """
    from axo.coordination.domain import parse_domain, parse_problem

    problems: list[Problem] = []  # every coordinator's, the domain's, its problem's: at once
    for i, agent in enumerate(workflow.agents):
        spec = _plan_spec(workflow, agent, check=False)
        if spec is None:
            continue
        try:
            domain = parse_domain(spec.domain_text, file=spec.domain_file)
        except ConfigError as exc:  # the problem and the capabilities need the domain
            problems += exc.problems
            continue
        if spec.problem_text:
            try:
                parse_problem(spec.problem_text, domain, file=spec.problem_file or "<goal>")
            except ConfigError as exc:
                problems += exc.problems
        for key in spec.capabilities if source is not None else ():
            if key not in domain.operators:
                near = difflib.get_close_matches(key, list(domain.operators), n=1)
                problems.append(
                    source.problem(
                        ("agents", i, "plan", "capabilities", key),
                        f"no operator '{key}' in domain '{domain.name}'",
                        f"did you mean '{near[0]}'?"
                        if near
                        else "use one of: " + ", ".join(sorted(domain.operators)),
                    )
                )
    raise_if(problems)


def _plan_spec(workflow: Workflow, agent: Agent, *, check: bool = True) -> PlanSpec | None:
    """Read a coordinator's domain and problem files (relative to the workflow file) and check
    them now, so a broken domain is a ConfigError before anything runs."""
    if agent.role != "coordinator" or agent.plan is None:
        return None
    base = (
        os.path.dirname(os.path.abspath(workflow.file))
        if os.path.exists(workflow.file)
        else os.getcwd()
    )

    def read(path: str) -> tuple[str, str]:
        full = path if os.path.isabs(path) else os.path.join(base, path)
        # missing or unreadable: a located ConfigError
        load_yaml(full, what="planning", relative_to=f"the workflow file's folder ({base})")
        with open(full, encoding="utf-8") as f:
            return full, f.read()

    domain_file, domain_text = read(agent.plan.domain)
    problem_file, problem_text = read(agent.plan.problem) if agent.plan.problem else (None, None)
    spec = PlanSpec(
        domain_file=domain_file,
        domain_text=domain_text,
        problem_file=problem_file,
        problem_text=problem_text,
        max_rounds=agent.plan.max_rounds,
        capabilities={k: tuple(v) for k, v in agent.plan.capabilities.items()},
    )
    if check:
        from axo.coordination.coordinator import load

        load(spec)
    return spec


_templates: weakref.WeakKeyDictionary[Workflow, dict[tuple[str, ...], tuple[StartRun, bytes]]] = (
    weakref.WeakKeyDictionary()
)


def start_message(
    workflow: Workflow, registry: ToolRegistry, run_id: str, run_input: str
) -> tuple[StartRun, bytes]:
    """The StartRun for a run of ``workflow`` and a key naming its agents; the agent part is
    built once per workflow and set of tools."""
    by_tools = _templates.setdefault(workflow, {})
    names = tuple(registry.names())
    cached = by_tools.get(names)
    if cached is None:
        template = _start_template(workflow, registry)
        key = msgspec.msgpack.encode((template.agents, template.dependencies))
        cached = by_tools[names] = (template, key)
    template, key = cached
    return msgspec.structs.replace(template, run_id=run_id, input=run_input), key


def _start_template(workflow: Workflow, registry: ToolRegistry) -> StartRun:
    index = {a.id: i for i, a in enumerate(workflow.agents)}
    return StartRun(
        run_id="",
        agents=agent_specs(workflow, registry),
        dependencies=tuple(tuple(index[d] for d in a.depends_on) for a in workflow.agents),
        thresholds=tuple(a.activation_threshold for a in workflow.agents),
        decay=tuple(a.activation_decay for a in workflow.agents),
        input="",
    )
