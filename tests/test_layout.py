"""The package's shape: no import cycles, no private name reached across modules, one declaration of the options."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ddvideo
from ddvideo.batch.manifest import BATCH_KEYS, MODES, job_keys
from ddvideo.options import build_parser, parse_argv

PACKAGE = Path(ddvideo.__file__).parent
MAX_LINES = 450


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its __init__.py)."""
    files = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The import statements under `if TYPE_CHECKING:`: they never run, so they form no cycle."""
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden.update(n for stmt in node.body for n in ast.walk(stmt))
    return hidden


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for each import of a package module in `path`, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    hidden = type_checking_only(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if node in hidden:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names if alias.name in modules]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target not in modules:
                continue
            for alias in node.names:  # `from . import media` imports a module, not a name of the package
                sub = f"{target}.{alias.name}"
                found.append((sub, [], node.lineno) if sub in modules else (target, [alias.name], node.lineno))
    return found


def import_graph() -> dict[str, list[tuple[str, list[str], int]]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph, as the list of its modules with the first repeated at the end; None if none."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "one.py").write_text("from .two import f\n")
    (pkg / "two.py").write_text("def f():\n    from pkg.one import g\n")
    modules = {"pkg": pkg / "__init__.py", "pkg.one": pkg / "one.py", "pkg.two": pkg / "two.py"}
    edges = {name: {m for m, _, _ in imports_of(name, path, modules)} for name, path in modules.items()}
    assert find_cycle(edges) == ["pkg.one", "pkg.two", "pkg.one"]


def test_no_import_cycles():
    """Module-level and function-level imports alike: a cycle means two modules can't be read one without the other."""
    edges = {name: {m for m, _, _ in imports if m != name} for name, imports in import_graph().items()}
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_private_name_is_imported_from_another_module():
    reach_ins = [f"{name}:{line} imports {taken} from {module}"
                 for name, imports in import_graph().items() for module, names, line in imports
                 for taken in names if taken.startswith("_") and not taken.startswith("__") and module != name]
    assert not reach_ins, reach_ins


def test_no_private_attribute_of_another_module_is_used():
    """`from . import media` then `media._helper` is a reach-in too."""
    modules = module_files()
    reach_ins = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bound = set()  # local names of package modules
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    module = alias.name if isinstance(node, ast.Import) else f"{node.module or ''}.{alias.name}"
                    if isinstance(node, ast.ImportFrom) and node.level:
                        bound.add(alias.asname or alias.name)  # relative: only `from . import x` binds a module
                    elif module.startswith("ddvideo"):
                        bound.add(alias.asname or alias.name.split(".")[0])
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound \
                    and node.attr.startswith("_") and not node.attr.startswith("__"):
                reach_ins.append(f"{name}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not reach_ins, reach_ins


def test_every_module_is_short_and_says_what_it_is_for():
    for name, path in module_files().items():
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= MAX_LINES, f"{name} has {len(text.splitlines())} lines"
        doc = ast.get_docstring(ast.parse(text))
        assert doc and doc.strip(), f"{name} does not open with what it is for"


@pytest.mark.parametrize("mode", MODES)
def test_a_batch_jobs_keys_are_its_commands_options(mode):
    """The batch reads its keys from the parser the command line uses: every option a command parses is a key."""
    parsed = parse_argv(build_parser(), [mode, "in.png", "out.mp4"])
    assert parsed["command"] == mode
    assert job_keys(mode) - set(BATCH_KEYS) == set(parsed) - {"command"}
