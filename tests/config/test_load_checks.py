"""What loading a workflow catches beyond the schema: resources a run would trip on, numbers
that are no numbers, and YAML that expands without end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from axo.errors import ConfigError
from axo.workflow import load_file

BAD = """\
providers:
  loc: {type: local, model: notamodel}
  fn: {type: function, function: "nosuchmod:fn"}
mcp_servers:
  s: {transport: stdio}
  web: {transport: streamable_http}
agents:
  - id: a
    provider: loc
    tools: [nosuchtool, mcp__nosuch, read_fil, mcp__s]
    output_schema: {type: objekt}
  - {id: b, provider: fn}
"""


def test_axo_validate_reports_what_a_run_would_trip_on_located(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    out = subprocess.run(
        [sys.executable, "-m", "axo.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    for where, what in [
        (":2: $.providers.loc.model", "unknown local model 'notamodel'"),
        (":3: $.providers.fn.function", "no module 'nosuchmod'"),
        (":5: $.mcp_servers.s", "has no command"),
        (":6: $.mcp_servers.web", "has no url"),
        (":10: $.agents[0].tools[0]", "unknown tool 'nosuchtool'"),
        (":10: $.agents[0].tools[1]", "MCP server 'nosuch', which is not configured"),
        (":10: $.agents[0].tools[2]", "did you mean 'read_file'?"),
        (":11: $.agents[0].output_schema", "not a valid JSON Schema"),
    ]:
        assert any(where in line and what in line for line in out.stderr.splitlines()), what
    assert "tools[3]" not in out.stderr, "a configured MCP server's tools are fine"


def test_a_function_or_model_file_a_run_could_not_use_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "broken_helpers.py").write_text("raise RuntimeError('half-written module')\n")
    (tmp_path / "not_a_model.gguf").write_text("plain text")
    path = tmp_path / "bad.yaml"
    path.write_text(
        "providers:\n"
        "  gone: {type: function, function: 'json:no_such_function'}\n"
        "  data: {type: function, function: 'json:__doc__'}\n"
        "  broken: {type: function, function: 'broken_helpers:reply'}\n"
        "  fine: {type: function, function: 'json:dumps'}\n"
        "  missing: {type: local, model_path: models/nowhere.gguf}\n"
        "  text: {type: local, model_path: not_a_model.gguf}\n"
        "agents:\n  - {id: a, provider: fine}\n"
    )
    for command in ("validate", "run"):
        out = subprocess.run(
            [sys.executable, "-m", "axo.cli", command, str(path)]
            + (["--input", "x"] if command == "run" else []),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,  # where the module is found and relative model paths are read
        )
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        lines = out.stderr.splitlines()
        for where, what in [
            (":2: $.providers.gone.function", "module 'json' has no attribute 'no_such_function'"),
            (":3: $.providers.data.function", "has a non-callable attribute '__doc__'"),
            (":4: $.providers.broken.function", "RuntimeError: half-written module"),
            (":6: $.providers.missing.model_path", "'models/nowhere.gguf' does not exist"),
            (":7: $.providers.text.model_path", "is not a GGUF file"),
        ]:
            assert any(where in line and what in line for line in lines), (what, lines)
        assert "providers.fine" not in out.stderr


def test_the_python_api_leaves_tool_names_to_the_run(tmp_path: Path) -> None:
    # run(tools=…) may add any tool, MCP ones included: only the run can tell
    text = "agents:\n  - {id: a, tools: [my_tool, mcp__mine__do]}\n"
    assert load_file("w.yaml", text=text, env={}).agents[0].tools == ["my_tool", "mcp__mine__do"]


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_a_timeout_must_be_a_finite_number(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_file("w.yaml", text=f"run: {{timeout: {value}}}\nagents:\n  - {{id: a}}\n", env={})
    assert [p.path for p in info.value.problems] == ["$.run.timeout"]


def test_aliases_of_aliases_are_refused(tmp_path: Path) -> None:
    rows = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    rows += [f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]" for k in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(rows) + "\nagents:\n  - {id: a}\n")  # 9**10 values expanded
    out = subprocess.run(  # the bound stands for "no hang"; expanding it would take hours
        [sys.executable, "-m", "axo.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "expands to more than" in out.stderr


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_file("w.yaml", text="a: &a [1, *a]\nagents:\n  - {id: a}\n", env={})
    assert "expands to more than" in str(info.value)


def test_ordinary_aliases_still_load() -> None:
    text = "x-sampling: &s {temperature: 0.5}\nagents:\n  - {id: a, sampling: *s}\n"
    with pytest.raises(ConfigError) as info:  # the x- key is unknown: aliases themselves work
        load_file("w.yaml", text=text, env={})
    assert [p.path for p in info.value.problems] == ["$.x-sampling"]


def test_distill_without_long_term_memory_is_a_config_error() -> None:
    text = "agents:\n  - {id: a, memory: {distill: true}}\n"
    with pytest.raises(ConfigError) as info:
        load_file("w.yaml", text=text, env={})
    assert [p.path for p in info.value.problems] == ["$.agents[0].memory.distill"]


def test_a_word_yaml_reads_as_a_boolean_gets_a_hint_to_quote_it() -> None:
    with pytest.raises(ConfigError) as info:
        load_file("w.yaml", text="agents:\n  - id: on\n  - {id: b, depends_on: [yes]}\n", env={})
    problems = info.value.problems
    assert [p.path for p in problems] == ["$.agents[0].id", "$.agents[1].depends_on[0]"]
    assert all(p.fix.startswith("put it in quotes") for p in problems)


def test_an_empty_file_argument_is_no_file_rather_than_the_current_folder() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "axo.cli", "validate", ""],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert (
        out.stderr.strip() == "error: '': $: no file given — give the path of a workflow YAML file"
    )


def test_remember_or_recall_without_long_term_memory_is_a_config_error() -> None:
    text = (
        "agents:\n  - {id: a, tools: [read_file, remember, recall]}\n"
        "  - {id: b, tools: [remember], memory: {long_term: true}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_file("w.yaml", text=text, env={})
    problems = info.value.problems
    assert [p.path for p in problems] == ["$.agents[0].tools[1]", "$.agents[0].tools[2]"]
    assert "long-term memory, which is off" in problems[0].message
    assert problems[0].fix.startswith("add long_term: true")


@pytest.mark.parametrize("url", ["localhost:8080/v1", "", "htp://x", "http:// spaced"])
def test_a_base_url_that_is_no_http_url_is_a_located_error(url: str) -> None:
    text = f"providers:\n  p: {{type: openai, base_url: '{url}'}}\nagents:\n  - {{id: a}}\n"
    with pytest.raises(ConfigError) as info:
        load_file("w.yaml", text=text, env={})
    (problem,) = info.value.problems
    assert (problem.line, problem.path) == (2, "$.providers.p.base_url")
    assert "is not an http:// or https:// URL" in problem.message


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/v1", "https://h", "http://[::1]:9/v1"])
def test_http_urls_load(url: str) -> None:
    text = f"providers:\n  p: {{type: anthropic, base_url: '{url}'}}\nagents:\n  - {{id: a}}\n"
    assert load_file("w.yaml", text=text, env={}).config.providers["p"].base_url == url


def test_decay_on_an_agent_waiting_for_all_its_dependencies_is_a_located_error() -> None:
    text = (
        "agents:\n  - {id: a}\n  - {id: b}\n"
        "  - {id: all, depends_on: [a, b], activation_decay: 0.001}\n"
        "  - {id: quorum, depends_on: [a, b], activation_decay: 0.1, activation_threshold: 0.9}\n"
        "  - {id: one, depends_on: [a], activation_decay: 0.1}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_file("w.yaml", text=text, env={})
    (problem,) = info.value.problems  # a quorum below all, and one dependency, can fire
    assert (problem.line, problem.path) == (4, "$.agents[2].activation_decay")
    assert "fires only if they complete at the same instant" in problem.message
    assert problem.fix.startswith("set activation_threshold below 1")
