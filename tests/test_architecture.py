"""The house rules of docs/ARCHITECTURE.md that code can check: no import cycles in the
package, the library never imports snakemake, no module imports another's private
(underscore) names, and every rule reaches its library
function in one hop (rule -> workflow_scripts/<rule>.py -> textseld, never through the CLI)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _imported(tree: ast.AST) -> set[str]:
    """Every module name an import statement anywhere in `tree` names (function-level imports too)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def _import_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imported(ast.parse(p.read_text(encoding="utf-8"))) & set(mods) - {m} for m, p in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycles():
    graph = _import_graph()
    assert len(graph) > 50 and graph["textseld.models.factory"], "the import graph was not read"
    assert _cycles(graph) == [], "modules that import each other (function-level imports count)"


def test_the_library_never_imports_snakemake():
    offenders = [
        m
        for m, p in _modules().items()
        if any(n.split(".")[0] == "snakemake" for n in _imported(ast.parse(p.read_text(encoding="utf-8"))))
    ]
    assert offenders == []


def test_no_module_imports_another_module_s_private_names():
    """What one module uses of another is that module's public interface: a name a second
    module needs is made public (or moved), never imported with its underscore."""
    offenders = []
    for m, p in _modules().items():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("textseld"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                offenders += [f"{m}:{node.lineno} imports {node.module}.{name}" for name in private]
    assert offenders == []


def _rule_scripts() -> dict[str, str | None]:
    """rule name -> the file its `script:` names (None for a rule without one)."""
    out: dict[str, str | None] = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        blocks = re.split(r"^rule (\w+):", smk.read_text(encoding="utf-8"), flags=re.MULTILINE)
        for name, body in zip(blocks[1::2], blocks[2::2]):
            script = re.search(r"^\s+script:\s*\n\s+\"([^\"]+)\"", body, flags=re.MULTILINE)
            out[name] = script.group(1) if script else None
    return out


def test_every_rule_runs_its_own_adapter_which_calls_the_library_directly():
    scripts = _rule_scripts()
    assert len(scripts) >= 15
    assert {r: s for r, s in scripts.items() if s != f"../workflow_scripts/{r}.py"} == {}
    for rule in scripts:
        adapter = ROOT / "workflow_scripts" / f"{rule}.py"
        imported = _imported(ast.parse(adapter.read_text(encoding="utf-8")))
        library = {n for n in imported if n.startswith("textseld.") and n != "textseld.logsetup"}
        assert library, f"{adapter.name} calls no library function"
        through_cli = {n for n in imported if n.startswith(("textseld.cli", "textseld.commands"))}
        assert not through_cli, f"{adapter.name} goes through the CLI: {sorted(through_cli)}"
