"""The shape of the package, checked so that it stays (docs/architecture.md).

- the layers contract in setup.cfg holds (import-linter: a package imports only from the
  layers below it; CI also runs ``lint-imports``);
- no import cycles between refsnn's modules, counting imports inside functions too;
- no module imports a ``_private`` name from another module;
- every module stays under 600 lines.

These read the source with :mod:`ast`; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "refsnn"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    name = ".".join(parts)
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: dict) -> list[tuple[str, str]]:
    """``(module, name)`` for every ``from refsnn... import name`` and ``import refsnn...`` in
    ``path``, anywhere in the file; ``module`` resolved against the package when relative."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source == "refsnn" or source.startswith("refsnn."):
                found += [(source, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names
                      if alias.name == "refsnn" or alias.name.startswith("refsnn.")]
    return found


def import_graph() -> dict[str, set]:
    """Module -> the refsnn modules it imports (``from a import b``: ``a.b`` if that is a
    module, else ``a``)."""
    known = modules()
    graph = {}
    for name, path in known.items():
        edges = set()
        for source, imported in imports(path, known):
            target = f"{source}.{imported}" if f"{source}.{imported}" in known else source
            if target in known and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
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


def test_layers_contract_is_kept():
    importlinter = pytest.importorskip("importlinter.cli")
    assert importlinter.lint_imports(str(PACKAGE.parent / "setup.cfg"), no_cache=True,
                                     no_logo=True) == 0


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_no_private_names_imported_across_modules():
    known = modules()
    reach_ins = [f"{module_name(path)} imports {source}.{name}"
                 for path in known.values() for source, name in imports(path, known)
                 if name.startswith("_") and not name.startswith("__")]
    assert reach_ins == []


def test_modules_stay_small():
    big = {name: n for name, path in modules().items()
           if (n := len(path.read_text().splitlines())) > 600}
    assert big == {}


def op_name_uses(path: Path, kinds=()) -> set:
    """String constants used as an op name in ``path``: compared with an ``.op`` attribute
    (``node.op == "x"``, ``node.op in ("x", ...)``), passed as ``op=`` or as the first
    argument of ``Kind``/``OpSpec``, or keys of a table keyed by two or more of ``kinds``
    (``{"if": ..., "lif": ...}``, a per-kind table outside the kinds' modules)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)} & set(kinds)
            found |= keys if len(keys) >= 2 else set()
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr == "op" for s in sides):
                found |= {c.value for s in sides for c in ast.walk(s)
                          if isinstance(c, ast.Constant) and isinstance(c.value, str)}
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name in ("Kind", "OpSpec") and node.args and isinstance(node.args[0], ast.Constant):
                found.add(node.args[0].value)
            found |= {k.value.value for k in node.keywords
                      if k.arg == "op" and isinstance(k.value, ast.Constant)}
    return found


#: The converters that make a neuron kind (besides the kind's own module, the only modules
#: that may name it as an op); the NIR reader finds its kinds through their NirSpec.
MAKERS = {"if": {"refsnn.conversion.if_"}, "bistable": {"refsnn.conversion.bsnn"},
          "sgd": {"refsnn.conversion.signgd"}}


def test_each_neuron_kind_is_named_as_an_op_only_by_its_module_and_its_maker():
    from refsnn.neurons.base import KINDS

    neurons = [op for op, kind in KINDS.items() if kind.is_neuron]
    uses = {name: op_name_uses(path, neurons) for name, path in modules().items()}
    for op, kind in KINDS.items():
        if not kind.is_neuron:
            continue
        allowed = {kind.step.__module__} | MAKERS.get(op, set())
        assert {name for name, ops in uses.items() if op in ops} <= allowed, op


def test_op_name_uses_finds_dispatch_on_kind_names(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('TABLE = {"if": 1, "lif": 2, "x": 3}\nPARAMS = {"threshold": 1}\n'
                    'ok = node.op in ("sgd",)\nKind("toy", Step)\nf(op="li")\n')
    assert op_name_uses(path, ["if", "lif", "sgd", "threshold"]) == {
        "if", "lif", "sgd", "toy", "li"}
