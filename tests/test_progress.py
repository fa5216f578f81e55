from __future__ import annotations

from axo.progress import readable


def test_structured_output_prints_as_key_value_lines() -> None:
    assert readable('{"decision": "REVISE", "reason": "no\\nexpiry"}') == (
        "decision: REVISE\nreason: no expiry"
    )
    assert readable('{"decision": "APPROVE", "reason": "raw\nnewline"}') == (
        "decision: APPROVE\nreason: raw newline"
    )


def test_plain_text_and_non_objects_print_unchanged() -> None:
    assert readable("just words") == "just words"
    assert readable("[1, 2]") == "[1, 2]"
    assert readable("{not json}") == "{not json}"
