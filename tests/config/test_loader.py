"""The workflow loader: YAML positions, ``${VAR}`` expansion, schema and graph problems."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axo.config import AnthropicProvider, FunctionProvider, LocalProvider, OpenAIProvider
from axo.errors import ConfigError, Problem, UsageError
from axo.workflow import Workflow, load_file, load_workflow
from axo.yamlsource import Source, expand_env, load_yaml, parse_yaml, redact, render_path

CHAIN = """\
agents:
  - id: researcher
  - id: writer
    depends_on: [researcher]
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_file("w.yaml", text=text, env=env or {})
    return list(info.value.problems)


def rendered(text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_file("w.yaml", text=text, env=env or {})
    return str(info.value)


# ---------------------------------------------------------------- valid files


def test_a_minimal_file_loads_with_the_embedded_model_as_provider() -> None:
    wf = load_file("w.yaml", text="agents:\n  - id: solo\n", env={})
    assert wf.ids == ["solo"]
    assert wf.provider_name(wf.agents[0]) == "local"
    assert isinstance(wf.provider_config("local"), LocalProvider)


def test_a_file_using_every_section_loads() -> None:
    text = """\
version: 1
name: everything
description: every section once
providers:
  gpt: {type: openai, model: gpt-4o-mini, api_key: "${KEY}", headers: {X-Team: axo}}
  claude: {type: anthropic, model: claude-x, max_retries: 0}
  small: {type: local, n_ctx: 2048, n_threads: 2}
  route: {type: function, function: "pkg.mod:route"}
agents:
  - id: a
    name: Alpha
    role: agent
    provider: gpt
    token_budget: {per_call: 100, per_execution: 1000, overflow_policy: warn}
    sampling: {temperature: 0.5, top_p: 1, max_tokens: 10, seed: 3, stop: ["\\n"]}
    memory: {checkpoint: false, long_term: true, recall_k: 0}
    tools: [time.now]
  - id: b
    provider: claude
    depends_on: [a]
    activation_threshold: 0.5
  - id: c
    provider: small
    depends_on: [a]
  - id: d
    provider: route
    depends_on: [b, c]
workflows:
  - id: all
    agents: [a, b, c, d]
    entry: a
  - id: head
    agents: [a, b]
    entry: [a]
mcp_servers:
  time: {command: mcp-server-time, args: ["--local-timezone", "UTC"]}
run: {token_budget: 5000, timeout: 30}
"""
    wf = load_file("w.yaml", text=text, env={"KEY": "sk-secret-value"})
    providers = wf.config.providers
    assert isinstance(providers["gpt"], OpenAIProvider)
    assert providers["gpt"].api_key == "sk-secret-value"
    assert isinstance(providers["claude"], AnthropicProvider)
    assert isinstance(providers["route"], FunctionProvider)
    assert wf.layers() == [["a"], ["b", "c"], ["d"]]
    assert wf.secrets == {"sk-secret-value"}
    head = wf.select("head")
    assert (head.ids, head.entries, head.sinks) == (["a", "b"], ["a"], ["b"])


def test_load_file_reads_a_file_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "chain.yaml"
    path.write_text(CHAIN, encoding="utf-8")
    wf = load_file(path, env={})
    assert (wf.file, wf.ids, wf.edges) == (str(path), ["researcher", "writer"], 1)


def test_a_byte_order_mark_is_not_part_of_the_first_key(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + CHAIN.encode())
    assert load_file(path, env={}).ids == ["researcher", "writer"]


# ---------------------------------------------------------------- ${VAR} expansion


def expanded(value: str, env: dict[str, str]) -> tuple[object, list[Problem]]:
    source = parse_yaml(f"value: {value!r}\n", file="e.yaml")
    found = expand_env(source, env)
    return source.data["value"], found


@pytest.mark.parametrize(
    ("value", "env", "result"),
    [
        ("${A}", {"A": "one"}, "one"),
        ("x-${A}-${B}-y", {"A": "1", "B": "2"}, "x-1-2-y"),
        ("${A:-fallback}", {}, "fallback"),
        ("${A:-fallback}", {"A": "set"}, "set"),
        ("${A:-fallback}", {"A": ""}, "fallback"),
        ("${A:-}", {}, ""),
        ("${A}", {"A": ""}, ""),
        ("price: $${A}", {"A": "x"}, "price: ${A}"),
        ("$5 and $A", {"A": "x"}, "$5 and $A"),
    ],
)
def test_variables_expand_like_the_shell(value: str, env: dict[str, str], result: str) -> None:
    assert expanded(value, env) == (result, [])


def test_an_unset_variable_without_default_names_the_variable_and_its_place() -> None:
    text = "agents:\n  - id: a\n    model: ${AXO_NO_SUCH_VAR}\n"
    assert problems(text) == [
        Problem(
            "w.yaml",
            3,
            "$.agents[0].model",
            "environment variable AXO_NO_SUCH_VAR is not set",
            "export AXO_NO_SUCH_VAR=… before running, or write ${AXO_NO_SUCH_VAR:-default}",
        )
    ]


@pytest.mark.parametrize("value", ["${A B}", "${A:default}", "${1A}", "${A", "${A:-${B}}"])
def test_a_malformed_reference_is_an_error_not_literal_text(value: str) -> None:
    _, found = expanded(value, {"A": "x", "B": "y"})
    assert [p.message.split("'")[0] for p in found] == ["malformed variable reference "]


def test_expansion_uses_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AXO_TEST_MODEL", "from-env")
    wf = load_file("w.yaml", text="agents:\n  - {id: a, model: '${AXO_TEST_MODEL}'}\n")
    assert wf.agents[0].model == "from-env"


def test_keys_and_non_string_values_are_left_alone() -> None:
    source = parse_yaml("a: 1\nb: [true, null, '${X}']\n", file="e.yaml")
    assert expand_env(source, {"X": "x"}) == []
    assert source.data == {"a": 1, "b": [True, None, "x"]}
    assert source.env_paths == {("b", 2)}


# ---------------------------------------------------------------- secrets


SECRET = "sk-live-0123456789abcdef"


@pytest.mark.parametrize(
    "text",
    [
        "agents:\n  - {id: a, role: '${S}'}\n",
        "agents:\n  - {id: a, provider: '${S}'}\n",
        "agents:\n  - {id: a, depends_on: ['${S}']}\n",
        "agents:\n  - {id: '${S}'}\n  - {id: '${S}'}\n",
        "agents:\n  - {id: a}\nworkflows:\n  - {id: w, agents: [a, '${S}']}\n",
        "providers:\n  p: {type: '${S}'}\nagents:\n  - {id: a}\n",
        "providers:\n  p: {type: function, function: '${S}'}\nagents:\n  - {id: a}\n",
        "agents:\n  - {id: a, max_iterations: '${S}'}\n",
        "agents:\n  - {id: a}\nversion: '${S}'\n",
    ],
)
def test_a_value_from_the_environment_is_never_printed(text: str) -> None:
    message = rendered(text, {"S": SECRET})
    assert SECRET not in message
    assert "w.yaml:" in message


def test_a_secret_used_as_a_workflow_name_is_redacted_by_select() -> None:
    text = (
        "agents:\n  - {id: a}\n"
        "workflows:\n  - {id: '${S}', agents: [a]}\n  - {id: b, agents: [a]}\n"
    )
    wf = load_file("w.yaml", text=text, env={"S": "secret-workflow"})
    with pytest.raises(UsageError) as info:
        wf.select(None)
    assert "secret-workflow" not in str(info.value)


# Values without a letter or digit ("-", "_") are not secret enough to hide.
SECRETS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_./", min_size=1, max_size=30)


@given(SECRETS.filter(lambda s: any(c.isalnum() for c in s)))
def test_no_secret_is_ever_shown_quoted_and_long_ones_are_shown_nowhere(secret: str) -> None:
    text = "agents:\n  - {id: a, role: '${S}', provider: '${S}', depends_on: ['${S}']}\n"
    with pytest.raises(ConfigError) as info:
        load_file("w.yaml", text=text, env={"S": secret})
    message = str(info.value)
    assert f"'{secret}'" not in message
    # the same file with another value: words the messages always hold ("agen" in "agent")
    # are not the secret shown
    with pytest.raises(ConfigError) as other:
        load_file("w.yaml", text=text, env={"S": "qqqqqqqqqqqq"})
    if len(secret) >= 4 and any(c.isalnum() for c in secret) and secret not in str(other.value):
        assert secret not in message


@pytest.mark.parametrize(
    ("text", "secrets", "result"),
    [
        ("key sk-123456 used", {"sk-123456"}, "key *** used"),
        ("agents[1] and '1'", {"1"}, "agents[1] and '***'"),
        ("a - b", {"-"}, "a - b"),
        ("abc abcdef", {"abc", "abcdef"}, "*** ***"),
    ],
)
def test_redact_hides_secrets_without_blanking_unrelated_text(
    text: str, secrets: set[str], result: str
) -> None:
    assert redact(text, secrets) == result


# ---------------------------------------------------------------- positions


def test_render_path_uses_dots_for_keys_and_brackets_for_indexes() -> None:
    assert render_path(()) == "$"
    assert render_path(("agents", 2, "depends_on", 0)) == "$.agents[2].depends_on[0]"


def test_every_path_knows_its_line() -> None:
    source = parse_yaml(
        "# comment\nagents:\n  - id: a\n    sampling:\n      top_p: 2\n"
        "  - {id: b, tools: [x,\n      y]}\n"
    )
    assert source.lines[("agents",)] == 2
    assert source.lines[("agents", 0)] == 3
    assert source.lines[("agents", 0, "sampling", "top_p")] == 5
    assert source.lines[("agents", 1, "tools", 1)] == 7
    assert source.line_of(("agents", 0, "sampling", "missing", 3)) == 4
    assert source.line_of(("nowhere",)) == 2


def test_a_missing_key_points_at_the_mapping_that_lacks_it() -> None:
    [p] = problems("agents:\n  - id: a\n  -\n    name: nameless\n")
    assert (p.line, p.path, p.message) == (4, "$.agents[1].id", "missing required key 'id'")


def test_errors_inside_flow_mappings_point_at_their_own_line() -> None:
    text = "agents:\n  - {id: a}\n  - {id: b,\n     depends_on: [a, zz]}\n"
    [p] = problems(text)
    assert (p.line, p.path) == (4, "$.agents[1].depends_on[1]")


def test_a_dependency_index_counts_entries_that_are_not_strings() -> None:
    found = problems("agents:\n  - id: a\n    depends_on: [1, ghost]\n")
    assert [p.path for p in found] == ["$.agents[0].depends_on[0]", "$.agents[0].depends_on[1]"]


# ---------------------------------------------------------------- all at once


def test_every_kind_of_problem_in_a_file_is_reported_at_once_in_line_order() -> None:
    text = """\
providers:
  main: {type: openai, modle: x}
agents:
  - id: a
    depends_on: [a]
    api_key: ${AXO_UNSET_FOR_TEST}
  - id: b
    provider: nope
    provider: still-nope
  - id: b
    depends_on: [c]
  - id: c
    depends_on: [b]
workflows:
  - {id: w, agents: [a, ghost]}
"""
    found = problems(text)
    assert [p.line for p in found] == sorted(p.line or 0 for p in found)
    messages = "\n".join(p.message for p in found)
    for needle in (
        "unknown key 'modle'",
        "depends on itself",
        "environment variable AXO_UNSET_FOR_TEST is not set",
        "unknown key 'api_key'",
        "duplicate key 'provider'",
        "uses undefined provider 'still-nope'",
        "duplicate agent id 'b'",
        "dependency cycle: b → c → b",
        "lists unknown agent 'ghost'",
    ):
        assert needle in messages
    assert str(problems(text)[0].render()).count("\n") == 0


def test_several_problems_render_one_per_line_under_a_count() -> None:
    text = rendered("agents:\n  - {id: a, tols: []}\n  - {id: b, depends_on: [x]}\n")
    lines = text.splitlines()
    assert lines[0] == "2 errors:"
    assert all(re.match(r"  w\.yaml:\d+: \$\S*: .+ — .+", ln) for ln in lines[1:])


def test_a_union_value_of_the_wrong_shape_is_one_problem() -> None:
    base = "agents:\n  - id: a\nworkflows:\n  - id: w\n    agents: [a]\n    entry: "
    [p] = problems(base + "5\n")
    assert (p.path, p.message) == (
        "$.workflows[0].entry",
        "expected a string or a list, got an integer",
    )
    [p] = problems(base + "[a, 5]\n")
    assert (p.path, p.message) == ("$.workflows[0].entry[1]", "expected a string, got an integer")


def test_a_non_string_key_is_reported_not_crashed_on() -> None:
    found = problems("1: x\nproviders:\n  2: {type: local}\nagents:\n  - id: a\n")
    assert [(p.path, p.message) for p in found] == [
        ("$.1", "unknown key '1'"),
        ("$.providers.2", "the name 2 is not a string"),
    ]


# ---------------------------------------------------------------- the file itself


def test_a_directory_is_not_a_workflow_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_file(tmp_path)
    assert str(info.value) == (
        f"error: {tmp_path}: $: is a directory, not a file — give the path of a workflow YAML file"
    )


def test_a_file_that_is_not_utf8_names_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"agents:\n  - id: cafe\n    name: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_file(path)
    assert str(info.value) == (
        f"error: {path}:3: $: the file is not UTF-8 text (byte 0xe9) — save it as UTF-8"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root may read any file")
def test_an_unreadable_file_says_why(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text(CHAIN)
    path.chmod(0)
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_file(path)


@pytest.mark.parametrize(
    "text", ["", "\n\n", "   \n", "# only\n# comments\n", "---\n", "--- # x\n"]
)
def test_an_empty_file_is_one_clear_error(text: str) -> None:
    [p] = problems(text)
    assert (p.line, p.path, p.message) == (1, "$", "the file is empty")


@pytest.mark.parametrize(
    ("text", "got"),
    [
        ("- id: a\n", "a list"),
        ("just words\n", "a string"),
        ("42\n", "an integer"),
        ("~\n", "nothing (null)"),
        ("2024-01-01\n", "a date"),
    ],
)
def test_the_top_level_must_be_a_mapping(text: str, got: str) -> None:
    [p] = problems(text)
    assert (p.path, p.message) == ("$", f"expected a mapping at the top, got {got}")


def test_a_control_character_is_invalid_yaml_with_its_line() -> None:
    [p] = problems("agents:\n  - id: a\x07\n")
    assert (p.line, p.message) == (2, "invalid YAML: control character #x0007 is not allowed")


def test_yaml_errors_are_a_single_line() -> None:
    for text in ("a: [\n", "a: 'x\n", "a:\n\t- b\n", "a: *nope\n", "? [x]\n: y\n", "a: b: c\n"):
        [p] = problems(text)
        assert p.message.startswith("invalid YAML: ")
        assert "\n" not in p.render()


# ---------------------------------------------------------------- duplicate keys


def test_parse_yaml_raises_on_duplicate_keys_unless_asked_to_collect_them() -> None:
    text = "agents:\n  - id: a\nagents:\n  - id: b\n"
    with pytest.raises(ConfigError) as info:
        parse_yaml(text, file="d.yaml")
    assert [p.render() for p in info.value.problems] == [
        "d.yaml:3: $.agents: duplicate key 'agents' (first at line 1) — keep one of them; "
        "YAML would silently use the last"
    ]
    source = parse_yaml(text, file="d.yaml", collect=True)
    assert source.data == {"agents": [{"id": "b"}]}
    assert len(source.problems) == 1


def test_after_a_duplicate_key_the_lines_are_those_of_the_value_that_wins() -> None:
    source = parse_yaml("a:\n  b: 1\na:\n  b: 2\n", collect=True)
    assert source.lines[("a", "b")] == 4


def test_load_yaml_takes_the_same_options(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("x: 1\nx: 2\n")
    assert load_yaml(path, collect=True).data == {"x": 2}
    with pytest.raises(ConfigError, match="duplicate key 'x'"):
        load_yaml(path)


# ---------------------------------------------------------------- Workflow.select


WORKFLOWS = (
    CHAIN
    + """\
  - id: editor
    depends_on: [writer]
workflows:
  - {id: draft, agents: [researcher, writer]}
  - {id: full, agents: [researcher, writer, editor]}
"""
)


def test_select_narrows_to_a_named_workflow_in_declaration_order() -> None:
    wf = load_workflow("w.yaml", "draft", text=WORKFLOWS, env={})
    assert (wf.workflow_id, wf.ids) == ("draft", ["researcher", "writer"])


def test_select_without_a_name_refuses_to_guess_between_several_workflows() -> None:
    with pytest.raises(UsageError) as info:
        load_workflow("w.yaml", text=WORKFLOWS, env={})
    assert str(info.value) == (
        "w.yaml defines several workflows (draft, full) — choose one with --workflow ID "
        "(workflow_id= in Python)"
    )


def test_run_with_a_workflow_id_selects_it_from_a_loaded_workflows_file() -> None:
    import axo
    from axo.testing import FakeLLM, Reply

    with FakeLLM(scripts={"researcher": [Reply("R")], "writer": [Reply("W")]}) as fake:
        text = WORKFLOWS.replace(
            "agents:\n",
            f"providers:\n  f: {{type: openai, base_url: '{fake.base_url}'}}\nagents:\n",
            1,
        )
        full = load_workflow("w.yaml", "full", text=text, env={})
        result = axo.run(full, "x", workflow_id="draft")  # not silently the loaded one
    assert result.workflow == "draft" and [a.id for a in result.agents] == ["researcher", "writer"]


def test_select_suggests_the_nearest_workflow_name() -> None:
    with pytest.raises(UsageError) as info:
        load_workflow("w.yaml", "ful", text=WORKFLOWS, env={})
    assert str(info.value) == (
        "w.yaml: no workflow 'ful' — did you mean 'full'? Workflows in the file: draft, full"
    )


def test_select_of_a_name_in_a_file_without_workflows_says_so() -> None:
    with pytest.raises(UsageError) as info:
        load_workflow("w.yaml", "any", text=CHAIN, env={})
    assert str(info.value) == (
        "w.yaml: no workflow 'any' — the file defines no workflows; leave out --workflow to "
        "run every agent"
    )


def test_select_without_a_name_takes_the_only_workflow_or_every_agent() -> None:
    one = WORKFLOWS.replace("  - {id: full, agents: [researcher, writer, editor]}\n", "")
    assert load_workflow("w.yaml", text=one, env={}).workflow_id == "draft"
    whole = load_workflow("w.yaml", text=CHAIN, env={})
    assert (whole.workflow_id, whole.ids) == (None, ["researcher", "writer"])


def test_a_workflow_is_immutable() -> None:
    wf = load_file("w.yaml", text=CHAIN, env={})
    assert isinstance(wf, Workflow)
    with pytest.raises(AttributeError):
        wf.file = "other.yaml"  # type: ignore[misc]


def test_a_source_problem_renders_file_line_path_message_and_fix() -> None:
    source = Source("s.yaml", {"a": 1}, lines={(): 1, ("a",): 1}, secrets={"hunter22"})
    p = source.problem(("a",), "bad hunter22", "use another than hunter22")
    assert p.render() == "s.yaml:1: $.a: bad *** — use another than ***"
