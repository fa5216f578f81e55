"""Every broken workflow file in ``corpus/`` fails ``axo validate`` with its exact message.

A corpus file begins with ``# expect: <line>`` comments (the exact stderr, line by line, with
``{file}`` standing for the path given on the command line) and optional ``# env: NAME=value``
lines setting the environment it runs in. Any other ``${NAME}`` it uses is unset for the run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from axo.cli import main

CORPUS = Path(__file__).parent / "corpus"
REPO = Path(__file__).resolve().parents[2]
FILES = sorted(CORPUS.glob("*.yaml"))
WORKFLOWS = sorted([*REPO.glob("workflows/*.yaml"), *REPO.glob("workflows/*.yml")])

# The categories the issue lists; each must have at least one corpus file.
CATEGORIES = {
    "unknown key": "unknown key '",
    "did you mean": "did you mean '",
    "wrong type": ": expected ",
    "missing required field": "missing required key '",
    "duplicate agent id": "duplicate agent id '",
    "unknown dependency": "depends on unknown agent '",
    "self dependency": "depends on itself",
    "cycle": "dependency cycle: ",
    "workflow lists unknown agent": "lists unknown agent '",
    "dependency outside workflow": "which is not in workflow '",
    "undefined provider": "uses undefined provider '",
    "invalid YAML": "invalid YAML: ",
    "empty file": "the file is empty",
    "unset variable": "environment variable ",
    "duplicate YAML key": "duplicate key '",
}


@dataclass(frozen=True)
class Case:
    path: Path
    expected: list[str]
    env: dict[str, str]
    unset: list[str]

    def stderr(self, shown_as: str) -> str:
        return "".join(line.replace("{file}", shown_as) + "\n" for line in self.expected)


def read_case(path: Path) -> Case:
    expected: list[str] = []
    env: dict[str, str] = {}
    text = path.read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("# expect: "):
            expected.append(line.removeprefix("# expect: "))
        elif line.startswith("# env: "):
            name, _, value = line.removeprefix("# env: ").partition("=")
            env[name] = value
        elif not line.startswith("#"):
            break
    referenced = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text)
    unset = sorted({name for name in referenced if name not in env})
    return Case(path, expected, env, unset)


CASES = [read_case(p) for p in FILES]


def apply_env(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in case.unset:
        monkeypatch.delenv(name, raising=False)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)


def run_subprocess(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "axo.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def test_the_corpus_has_at_least_thirty_numbered_files() -> None:
    assert len(FILES) >= 30
    numbers = [p.name.split("_", 1)[0] for p in FILES]
    assert all(re.fullmatch(r"\d\d", n) for n in numbers), numbers
    assert len(set(numbers)) == len(numbers), "two corpus files share a number"


def test_every_corpus_file_states_what_it_must_print() -> None:
    for case in CASES:
        assert case.expected, f"{case.path.name} has no '# expect:' line"


def test_the_corpus_covers_every_category_of_the_issue() -> None:
    text = "\n".join(line for case in CASES for line in case.expected)
    missing = [name for name, needle in CATEGORIES.items() if needle not in text]
    assert not missing, f"no corpus file for: {', '.join(missing)}"


@pytest.mark.parametrize("case", CASES, ids=[c.path.stem for c in CASES])
def test_validate_prints_exactly_the_expected_errors(
    case: Case, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_env(case, monkeypatch)
    code = main(["validate", str(case.path)])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == case.stderr(str(case.path))
    for value in case.env.values():
        assert value not in err


# The process boundary is what these test: exit code 2 and no traceback from the real command.
SUBPROCESS_CASES = [
    c for c in CASES if c.path.stem.split("_", 1)[0] in {"01", "17", "27", "29", "33", "42"}
]


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=[c.path.stem for c in SUBPROCESS_CASES])
def test_the_command_exits_2_without_a_traceback(case: Case) -> None:
    env = {k: v for k, v in os.environ.items() if k not in case.unset}
    env |= case.env
    shown = os.path.relpath(case.path, REPO)
    proc = run_subprocess(["validate", shown], env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == case.stderr(shown)


MISSING = "error: {file}: $: workflow file not found — check the path; a relative path starts from the current directory\n"  # noqa: E501


def test_a_missing_file_is_reported_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "no-such-workflow.yaml")
    assert main(["validate", missing]) == 2
    assert capsys.readouterr() == ("", MISSING.format(file=missing))


def test_a_missing_file_exits_2_without_a_traceback_from_the_command() -> None:
    proc = run_subprocess(["validate", "no/such/workflow.yaml"], dict(os.environ))
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == MISSING.format(file="no/such/workflow.yaml")


@pytest.mark.parametrize(
    "path", WORKFLOWS or [None], ids=[p.name for p in WORKFLOWS] or ["no-workflows"]
)
def test_every_repository_workflow_validates(
    path: Path | None, capsys: pytest.CaptureFixture[str]
) -> None:
    if path is None:
        pytest.fail(f"{REPO / 'workflows'} holds no *.yaml file; ship at least one workflow")
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out.startswith(f"ok  {path}: ")
