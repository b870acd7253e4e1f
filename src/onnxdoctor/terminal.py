"""Text from the model (node, tensor and op names, strings) made safe to print: a model must not be
able to move the cursor, clear the screen, set the window title, reorder text (bidi overrides) or
start a new line in onnxdoctor's text output. JSON and SARIF need nothing: json.dumps escapes."""

from __future__ import annotations

# C0 controls, DEL, C1 controls (0x9b is CSI on some terminals), bidi embeddings/overrides/isolates,
# line and paragraph separators: each written as its escape (a str.translate table: one C call per
# text, and no regular expression to compile at every start).
_UNSAFE_CODES = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _UNSAFE_CODES}
_ESCAPES_KEEP_LINES = {c: e for c, e in _ESCAPES.items() if c not in (0x09, 0x0A)}


def printable(text: str) -> str:
    """One line of text with every control character (newlines too) written as an escape."""
    return text.translate(_ESCAPES)


def printable_lines(text: str) -> str:
    """Like printable, keeping newlines and tabs (for a whole rendered report)."""
    return text.translate(_ESCAPES_KEEP_LINES)
