"""The documentation is self-contained: every relative link in README.md, BENCHMARKS.md and
docs/*.md names a file of this repository (a clone has nothing beside it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "BENCHMARKS.md", *(ROOT / "docs").glob("*.md")])

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"`[^`\n]*`")
_INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)


def links(text: str) -> list[str]:
    """Targets of the inline and reference-style links and images of a Markdown text,
    code blocks and code spans left out."""
    text = _CODE.sub("", _FENCE.sub("", text))
    return _INLINE.findall(text) + _REFERENCE.findall(text)


def relative_targets(text: str) -> list[str]:
    """The link targets that name a path (no URL scheme, not only an #anchor), anchors cut."""
    out = []
    for target in links(text):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue
        out.append(target.split("#", 1)[0].split("?", 1)[0])
    return out


def test_link_parser_finds_inline_reference_and_image_links_outside_code():
    text = (
        "See [the method](docs/METHOD.md#features) and ![graph](docs/rulegraph.png).\n"
        "[web](https://example.org) [here](#top) `[not](a/link.md)`\n"
        "```\n[not](in/a/fence.md)\n```\n"
        '[ref]: ../outside.md "title"\n'
    )
    assert relative_targets(text) == ["docs/METHOD.md", "docs/rulegraph.png", "../outside.md"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_to_files_in_the_repository(doc: Path):
    problems = []
    for target in relative_targets(doc.read_text(encoding="utf-8")):
        path = (doc.parent / target).resolve()
        if not path.is_relative_to(ROOT):
            problems.append(f"{target}: outside the repository")
        elif not path.exists():
            problems.append(f"{target}: no such file")
    assert not problems, f"{doc.relative_to(ROOT)}: " + "; ".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reference_to_design_notes_outside_the_repository(doc: Path):
    text = doc.read_text(encoding="utf-8")
    assert "shared/design" not in text, f"{doc.relative_to(ROOT)} refers to ../shared/design (not in a clone)"


def test_the_user_documents_exist():
    for name in ("METHOD.md", "ARCHITECTURE.md", "INTERFACES.md"):
        assert (ROOT / "docs" / name).is_file(), name
