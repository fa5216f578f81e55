"""Coordinators' plan files are checked when the workflow is loaded; ${VAR} secrets stay out
of names, tool descriptions, checkpoints and provider errors."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import axo
from axo.errors import ConfigError, ProviderError
from axo.llm.base import ChatMessage, ChatRequest
from axo.llm.openai import OpenAICompatible
from axo.mcp.server import AxoMcpServer
from axo.runtime.system import log_path
from axo.testing import Fail, FakeLLM, Reply
from axo.workflow import load_file
from tests.mcp.servers import command

DOMAINS = Path(__file__).resolve().parents[2] / "workflows" / "domains"
SECRET = "s3cr3t-value-123"


def coordinated(tmp_path: Path, domain: str, *, role: str = "coordinator") -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "agents:\n"
        f"  - {{id: boss, role: {role}, plan: {{domain: {domain}}}}}\n"
        "  - {id: hand, role: worker}\n"
    )
    return path


def test_a_coordinator_whose_domain_is_missing_fails_to_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_file(coordinated(tmp_path, "domains/nope.yaml"))
    text = str(info.value)
    assert "nope.yaml" in text and "planning file not found" in text
    assert "workflow file's folder" in text and str(tmp_path) in text


def test_a_coordinator_whose_domain_is_broken_fails_to_load(tmp_path: Path) -> None:
    domain = tmp_path / "d.yaml"
    text = (
        (DOMAINS / "blocks.yaml")
        .read_text()
        .replace("[clear ?b, ontable ?b", "[clar ?b, ontable ?b")
    )
    domain.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_file(coordinated(tmp_path, str(domain)))
    found = info.value.problems
    assert found and all(p.file == str(domain) and p.line is not None for p in found)
    assert all("clar" in p.message for p in found)


def test_a_plan_on_an_agent_that_is_no_coordinator_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_file(coordinated(tmp_path, str(DOMAINS / "blocks.yaml"), role="agent"))
    paths = [p.path for p in info.value.problems]
    assert "$.agents[0].plan" in paths


def secret_file(tmp_path: Path, base_url: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "name: ops ${K}\n"
        "providers:\n"
        f"  fake: {{type: openai, base_url: '{base_url}', max_retries: 0}}\n"
        "agents:\n"
        "  - {id: a, name: 'Agent ${K}', system_prompt: 'Use token ${K} carefully.'}\n"
    )
    return path


def test_secrets_stay_out_of_names_and_mcp_descriptions(tmp_path: Path) -> None:
    wf = load_file(secret_file(tmp_path, "http://127.0.0.1:9/v1"), env={"K": SECRET})
    assert wf.labels == (("a", "Agent ***"),)
    server = AxoMcpServer(wf)
    shown = json.dumps([(e.tool.name, e.tool.description) for e in server._axo_entries.values()])
    assert SECRET not in shown + server.name + (server.instructions or "")
    assert "***" in shown


def test_secrets_stay_out_of_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", SECRET)
    # the fake tells agents apart by name, which the secret in it leaves as "Agent ***"
    with FakeLLM(scripts={"Agent ***": [Reply(f"done with {SECRET}")]}) as fake:
        wf = axo.load_workflow(secret_file(tmp_path, fake.base_url))
        result = axo.run(wf, "go", state_dir=str(tmp_path / "state"))
        assert SECRET in fake.requests[0].text, "the model itself gets the real value"
    assert result.status == "succeeded"
    written = [p for p in (tmp_path / "state").rglob("*") if p.is_file()]
    assert any("checkpoints" in str(p) for p in written)
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("runtime", ["local", "multiproc"])
def test_a_secret_a_model_repeats_reaches_no_result_and_no_other_agents_prompt(
    tmp_path: Path, runtime: str
) -> None:
    path = tmp_path / "wf.yaml"
    with FakeLLM(scripts={"a": [Reply(f"the key is {SECRET}")], "b": [Reply("noted")]}) as fake:
        path.write_text(
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}',"
            " api_key: '${K}'}\n"
            "agents:\n  - {id: a}\n  - {id: b, depends_on: [a]}\n"
        )
        result = axo.run(load_file(str(path), env={"K": SECRET}), "x", runtime=runtime)  # type: ignore[arg-type]
        (b_asked,) = fake.requests_for("b")
    assert result.ok, result.failure
    assert result.outputs == {"b": "noted"} and result.agent("a").output == "the key is ***"
    assert SECRET not in b_asked.text and "the key is ***" in b_asked.text
    assert SECRET.encode() not in result.to_json()


def test_an_openai_provider_scrubs_its_key_from_an_echoed_error() -> None:
    key = "sk-literal-key-987654"
    with FakeLLM(scripts={"*": [Fail(401, message=f"bad token Bearer {key}")]}) as fake:
        provider = OpenAICompatible("p", fake.base_url, api_key=key, max_retries=0)
        request = ChatRequest(model="m", messages=(ChatMessage(role="user", content="a"),))
        with pytest.raises(ProviderError) as info:
            asyncio.run(_complete_once(provider, request))
    assert key not in str(info.value) and "[api key]" in str(info.value)


async def _complete_once(provider: OpenAICompatible, request: ChatRequest) -> None:
    try:
        await provider.complete(request)
    finally:
        await provider.aclose()


class _Malformed(BaseHTTPRequestHandler):
    """Answers every chat completion with 200 and ``{"choices": [null]}``."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"choices": [None]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def malformed_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Malformed)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def test_a_malformed_answer_is_a_provider_error_that_says_so(malformed_server: str) -> None:
    provider = OpenAICompatible("p", malformed_server, max_retries=0)
    request = ChatRequest(model="m", messages=(ChatMessage(role="user", content="a"),))
    with pytest.raises(ProviderError) as info:
        asyncio.run(_complete_once(provider, request))
    assert "p: malformed response" in str(info.value)


def test_secrets_stay_out_of_the_results_notes(tmp_path: Path) -> None:
    # an MCP server that fails at start, printing its key on stderr: the note naming the
    # failure quotes that stderr, and the result (axo run --json, MCP clients) shows the note
    say = "import os, sys; sys.stderr.write('bad key ' + os.environ['TOKEN']); sys.exit(1)"
    path = tmp_path / "wf.yaml"
    with FakeLLM(script=[Reply("ok")]) as fake:
        path.write_text(
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
            "agents:\n  - {id: a}\n"
            "mcp_servers:\n"
            f"  leaky: {{command: {sys.executable}, args: ['-c', {json.dumps(say)}],"
            " env: {TOKEN: '${K}'}}\n"
        )
        result = axo.run(load_file(str(path), env={"K": SECRET}), "x")
    assert result.ok, result.failure
    failed = [n.detail for n in result.notes if n.kind == "mcp_server_failed"]
    assert failed and "bad key ***" in json.dumps(failed)
    assert SECRET.encode() not in result.to_json()


def test_secrets_stay_out_of_axos_log_which_only_its_user_may_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an MCP server that prints a line that is not JSON-RPC, naming its key: the MCP SDK logs
    # the line it could not parse, and axo's log takes the SDK's warnings
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    counter = command("counter")
    path = tmp_path / "wf.yaml"
    with FakeLLM(script=[Reply("ok")]) as fake:
        path.write_text(
            f"providers:\n  fake: {{type: openai, base_url: '{fake.base_url}'}}\n"
            "agents:\n  - {id: a}\n"
            f"mcp_servers:\n  c: {{command: {counter['command']}, args: {counter['args']},"
            " env: {BANNER: 'using key ${K}'}}\n"
        )
        result = axo.run(load_file(str(path), env={"K": SECRET}), "x")
    assert result.ok, result.failure
    log = Path(log_path())
    assert log.parent == tmp_path / f"axo-{os.getuid()}"
    text = log.read_text()
    assert "using key ***" in text
    assert SECRET not in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700


def test_every_plan_mistake_of_every_coordinator_is_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "bad_domain.yaml").write_text(
        "domain: d\npredicates: {}\ntasks:\n  t:\n    methods: [{name: m, subtasks: [nothing]}]\n"
    )
    (tmp_path / "problem.yaml").write_text(
        "problem: p\ndomain: logistics\nobjects: {package: [parcel]}\n"
        "tasks: [deliver bob nowhere]\n"
    )
    path = tmp_path / "wf.yaml"
    path.write_text(
        "agents:\n"
        f"  - id: a\n    role: coordinator\n    plan: {{domain: {DOMAINS}/logistics.yaml,"
        " problem: problem.yaml, capabilities: {drvie: [ground]}}\n"
        "  - {id: b, role: coordinator, plan: {domain: bad_domain.yaml}}\n"
        "  - {id: hand, role: worker}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_file(path)
    found = {(Path(p.file).name, p.path) for p in info.value.problems}
    assert ("wf.yaml", "$.agents[0].plan.capabilities.drvie") in found
    assert any(f == "problem.yaml" for f, _ in found), found  # bob and nowhere are unknown
    assert any(f == "bad_domain.yaml" for f, _ in found), found  # 'nothing' is no task
