"""Text from the model (node, tensor and op names, strings) made safe to print: a model must not be
able to move the cursor, clear the screen, set the window title, reorder text (bidi overrides) or
start a new line in onnxdoctor's text output. JSON and SARIF need nothing: json.dumps escapes."""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls (0x9b is CSI on some terminals), bidi embeddings/overrides/isolates,
# line and paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match) -> str:
    c = m.group(0)
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def printable(text: str) -> str:
    """One line of text with every control character (newlines too) written as an escape."""
    return _UNSAFE.sub(_escape, text)


def printable_lines(text: str) -> str:
    """Like printable, keeping newlines and tabs (for a whole rendered report)."""
    return _UNSAFE_KEEP_LINES.sub(_escape, text)
