"""docs/INTERFACES.md against the code: every signature it writes out in full,
`textseld.<module>.<name>(<parameters>)`, names the real function's parameters in
order and with the defaults it shows; one that ends in `...` or starts with `...`
names only some of them, each of which must exist. Every rule's library function
(the table's "adapter calls" column) has such a signature."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "INTERFACES.md"

_SPAN = re.compile(r"`([^`]+)`")
_CALL = re.compile(r"^(textseld(?:\.\w+)+)\((.*)\)", re.DOTALL)
_NAME = re.compile(r"^\*{0,2}([A-Za-z_]\w*)")
_NO_DEFAULT = object()


@dataclass
class DocSignature:
    target: str  # dotted path of the function or class
    params: list[tuple[str, str | None]]  # name, default text (None: not shown)
    partial: bool  # `...` among the parameters: only some are named
    text: str


def split_top_level(text: str) -> list[str]:
    """`text` split at the commas outside brackets and quotes."""
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def matching_paren(text: str, start: int) -> int:
    """Index of the `)` that closes the `(` at `start`."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise ValueError(f"unbalanced parentheses in {text!r}")


def parse_signature(span: str) -> DocSignature | None:
    """The signature a code span writes out, or None when it is no call of a textseld name."""
    span = " ".join(span.split())
    head = re.match(r"^(textseld(?:\.\w+)+)\(", span)
    if not head:
        return None
    close = matching_paren(span, head.end() - 1)
    params, partial = [], False
    for part in split_top_level(span[head.end() : close]):
        if part in ("*", "/"):
            continue
        if part.startswith("..."):
            partial = True
            continue
        name = _NAME.match(part)
        if not name:
            raise ValueError(f"INTERFACES.md: cannot read the parameter {part!r} of `{span}`")
        default = part.split("=", 1)[1].strip() if "=" in part else None
        params.append((name.group(1), default))
    return DocSignature(head.group(1), params, partial, span)


def doc_signatures() -> list[DocSignature]:
    text = DOC.read_text(encoding="utf-8")
    found = (parse_signature(m.group(1)) for m in _SPAN.finditer(text))
    return [s for s in found if s is not None]


def resolve(target: str):
    """The object a dotted path names: the longest importable module, then attributes."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(target)


def problems(sig: DocSignature) -> list[str]:
    """How the written signature differs from the real one (empty: it agrees)."""
    try:
        obj = resolve(sig.target)
    except (ImportError, AttributeError) as e:
        return [f"{sig.target} does not exist ({e})"]
    real = {
        name: p
        for name, p in inspect.signature(obj).parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    names = [name for name, _ in sig.params]
    out = []
    unknown = [n for n in names if n not in real]
    if unknown:
        out.append(f"no parameter {unknown}")
    if not sig.partial and names != list(real):
        out.append(f"parameters {names}, the code has {list(real)}")
    for name, default in sig.params:
        if default is None or name not in real or "|" in default:
            continue
        try:
            written = ast.literal_eval(default)
        except (ValueError, SyntaxError):
            continue  # an expression or a placeholder, not a value
        actual = real[name].default
        if actual is inspect.Parameter.empty or written != actual:
            shown = "none" if actual is inspect.Parameter.empty else repr(actual)
            out.append(f"{name}={default}, the code's default is {shown}")
    return out


def test_parser_reads_full_and_partial_signatures():
    full = parse_signature('textseld.x.f(a, b: (n, 3) float, *, c="u"|"v", d=(1, 2)) -> dict')
    assert full is not None and not full.partial
    assert full.params == [("a", None), ("b", None), ("c", '"u"|"v"'), ("d", "(1, 2)")]
    part = parse_signature("textseld.x.g(..., tokens=, encoded=)")
    assert part is not None and part.partial and [n for n, _ in part.params] == ["tokens", "encoded"]
    assert parse_signature("textseld.constants") is None and parse_signature("f(a)") is None


def test_problems_finds_a_missing_parameter_and_a_wrong_default():
    sig = parse_signature("textseld.atomic.write_text_atomic(path)")
    assert sig is not None and any("parameters" in p for p in problems(sig))
    real = list(inspect.signature(resolve("textseld.atomic.write_text_atomic")).parameters)
    good = parse_signature(f"textseld.atomic.write_text_atomic({', '.join(real)})")
    assert good is not None and problems(good) == []
    bad = parse_signature("textseld.metrics.seld.score(..., protocol='strict')")
    assert bad is not None and problems(bad) == ["protocol='strict', the code's default is 'dcase2025'"]


@pytest.mark.parametrize("sig", doc_signatures(), ids=lambda s: s.target)
def test_written_signatures_match_the_code(sig: DocSignature):
    found = problems(sig)
    assert not found, f"docs/INTERFACES.md `{sig.text}`: " + "; ".join(found)


def test_every_rule_function_has_its_full_signature():
    text = DOC.read_text(encoding="utf-8")
    table = re.findall(r"^\| `\w+` \| `(textseld[\w.]+)` \|", text, re.MULTILINE)
    assert len(table) >= 15, "the rules table"
    full = {s.target for s in doc_signatures() if not s.partial}
    missing = [t for t in table if t not in full]
    assert not missing, f"docs/INTERFACES.md has no full signature of {missing}"
