"""The documentation is self-contained: every relative link in README.md, BENCHMARKS.md and
docs/*.md names a file of this repository (a clone has nothing beside it), no file of the
project (code, config, tests, CI, docs) refers to a document outside it, and every
"METHOD.md section N" names a section that docs/METHOD.md has."""

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


# The files of the project a reader meets: code, workflow, config, tests, benchmarks, CI, docs.
PROJECT_DIRS = (".ci", "src", "rules", "workflow_scripts", "config", "tests", "benchmarks", "docs")
PROJECT_DIRS += ("profiles", "slurm", "envs", "report")
PROJECT_FILES = ("README.md", "BENCHMARKS.md", "Snakefile", "Makefile", "pyproject.toml", ".pre-commit-config.yaml")
_SKIP_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache"}


def _ignored(path: Path) -> bool:
    """Generated files git ignores (e.g. src/textseld.egg-info, written by the install from an
    older README) are not the project's."""
    return any(part.endswith(".egg-info") for part in path.parts)


def project_files() -> list[Path]:
    """The text files of the project (binary files such as figures left out)."""
    files = [ROOT / name for name in PROJECT_FILES]
    for folder in PROJECT_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and not _SKIP_PARTS.intersection(path.parts) and not _ignored(path):
                files.append(path)
    out = []
    for path in files:
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        out.append(path)
    return out


# Documents a user of the repository does not have: the design notes the project was
# written from, and paths of a development machine. (Written so that this file does not
# match its own patterns.)
OUTSIDE_REFERENCES = {
    "the method specification (cite docs/METHOD.md)": re.compile(r"\bS[P]EC\b"),
    "a design note (cite docs/METHOD.md)": re.compile(r"\b(?:DCASE2025|S[Y]NTHETIC|S[L]URM|M[E]ASUREMENTS)\.md\b"),
    "the design notes folder": re.compile(r"shared/d[e]sign"),
    "a path of a development machine": re.compile(r"/w[o]rk/|/h[o]me/"),
}


def outside_references(text: str) -> list[str]:
    """`line N: what` for every reference of `text` to a document outside the repository."""
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        for what, pattern in OUTSIDE_REFERENCES.items():
            if pattern.search(line):
                found.append(f"line {n}: {what}: {line.strip()[:100]}")
    return found


def test_outside_reference_patterns_find_what_they_should():
    text = "x = 1  # S" + "PEC section 2\nsee DCASE2025" + ".md\nfrom /wo" + "rk/shared/de" + "sign/notes\n"
    assert [f.split(":")[0] for f in outside_references(text)] == ["line 1", "line 2", "line 3", "line 3"]
    assert outside_references("SPECTRUM, MODEL_S" + "PEC, docs/METHOD.md section 2, D" + "CASE2025 data") == []


@pytest.mark.parametrize("path", project_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reference_to_documents_outside_the_repository(path: Path):
    found = outside_references(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(ROOT)} refers to what a clone does not have: " + "; ".join(found)


_METHOD_SECTION = re.compile(r"^## (\d+)\. ", re.MULTILINE)
_SECTION_REFERENCE = re.compile(r"METHOD(?:\.md)?,? sections? (\d+)(?:\s*(?:-|and|to)\s*(\d+))?")


def method_sections() -> set[int]:
    return {int(n) for n in _METHOD_SECTION.findall((ROOT / "docs" / "METHOD.md").read_text(encoding="utf-8"))}


def test_method_has_its_numbered_sections():
    assert method_sections() == set(range(1, len(method_sections()) + 1)), "sections 1..N, none missing"


@pytest.mark.parametrize("path", project_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_method_section_references_name_existing_sections(path: Path):
    sections = method_sections()
    text = re.sub(r"\s+", " ", path.read_text(encoding="utf-8").replace("#", " "))
    bad = []
    for match in _SECTION_REFERENCE.finditer(text):
        numbers = [int(n) for n in match.groups() if n]
        if not set(numbers) <= sections:
            bad.append(match.group(0))
    assert not bad, f"{path.relative_to(ROOT)}: no such section of docs/METHOD.md: {bad}"


def test_the_user_documents_exist():
    for name in ("METHOD.md", "ARCHITECTURE.md", "INTERFACES.md"):
        assert (ROOT / "docs" / name).is_file(), name
