"""An agent's final answer against its ``output_schema`` (JSON Schema, draft 2020-12).

The schema is sent with the final request (``response_format``); servers that enforce it (a
local model's grammar, OpenAI's strict mode) answer valid JSON, others may not — so the answer
is checked here too, and the turn gets one chance to repair it (see ``AgentTurn``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

_FENCE = re.compile(r"\A\s*```[A-Za-z]*\s*\n(.*?)\n?```\s*\Z", re.DOTALL)


def checked(text: str, schema: dict[str, Any]) -> tuple[str, str | None]:
    """(the answer, what is wrong with it or None). An answer wrapped in a Markdown code
    fence is its inside, as many models write JSON that way; so are line breaks inside its
    strings."""
    fenced = _FENCE.match(text)
    if fenced is not None:
        text = fenced.group(1).strip()
    try:  # strict=False: a raw line break inside a string, as models write, is let through
        value = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        return text, f"it is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    error = best_match(Draft202012Validator(schema).iter_errors(value))
    if error is None:
        return text, None
    where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in error.absolute_path)
    return text, f"${where}: {error.message}"
