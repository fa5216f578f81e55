from __future__ import annotations

import pytest

RUNTIMES = ["local", "multiproc"]


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)
