"""The structure of a NIR graph before its nodes are read: nested graphs flattened, recurrent
edges found, every unsupported node listed.

Three rules, written in ``docs/semantics.md`` ("NIR graphs"):

- **Nested graphs.** A ``NIRGraph`` node ``G`` is replaced by its nodes, each renamed
  ``G.<inner name>`` (recursively: ``G.H.x``). Its ``Input`` and ``Output`` nodes become identity
  nodes ``G.<name>``: an edge into ``G`` goes to its one ``Input`` (or into ``G.<input name>``
  when it names one), an edge out of ``G`` leaves from its one ``Output`` (or ``G.<output
  name>``), and the inner edges join the renamed nodes.
- **Recurrent edges.** A depth-first search starts at the ``Input`` (at each of several, in
  sorted name order) and visits each node's successors in sorted name order; then, from
  each node it did not reach, in sorted name order, likewise. An edge to a node still on the
  search's path (a back edge) is *recurrent*: it carries its source's value of the previous
  step (zero at the first step). The rule depends
  on the node names only, not on the order of the file's edges; every cycle has at least one
  back edge, and the other edges form an acyclic graph, run in the reverse order in which the
  search finished its nodes.
- **Blockers.** Every node refsnn cannot read is named in one error (:func:`blockers`).
- **Inputs and outputs.** The top-level ``Input`` nodes (or, when there is none, the nested
  ``Input`` nodes nothing feeds) and the top-level ``Output`` nodes, each in sorted name order
  (:func:`graph_ends`); the reader concatenates several of them.

Nothing here imports ``nir``: the graph is read through its attributes (``nodes``, ``edges``
and each node's class name).
"""

from __future__ import annotations

from refsnn.errors import ModelFormatError

class Unsupported(ModelFormatError):
    """A node's feature refsnn does not simulate (e.g. a dilated convolution): the reader
    collects these with the unreadable node types, to name every blocker in one error
    (:func:`refuse`); alone, it is raised as it is."""


def _kind(node) -> str:
    return type(node).__name__


def flatten(graph, err) -> tuple[dict, dict, list]:
    """The graph with its nested graphs flattened (the rule in the module docstring).

    Parameters
    ----------
    graph : nir.NIRGraph
    err : callable
        ``err(name, field, expected, found) -> ModelFormatError``.

    Returns
    -------
    nodes : dict of str to NIR node
        Every node, nested ones renamed ``G.<name>``.
    kinds : dict of str to str
        Each node's NIR class name; ``Identity`` for the Input and Output nodes of a nested graph.
    edges : list of (str, str)
        In the file's order, a nested graph's edges where the graph node was.
    """
    nodes, kinds, edges = {}, {}, []
    ends = {}  # nested graph name -> ({input names}, {output names}), inner names prefixed
    for name, node in graph.nodes.items():
        if _kind(node) != "NIRGraph":
            nodes[name], kinds[name] = node, _kind(node)
            continue
        inner_nodes, inner_kinds, inner_edges = flatten(node, err)
        ins = [n for n, k in inner_kinds.items() if k == "Input"]
        outs = [n for n, k in inner_kinds.items() if k == "Output"]
        for n in inner_nodes:
            full = f"{name}.{n}"
            nodes[full] = inner_nodes[n]
            kinds[full] = "Identity" if n in ins or n in outs else inner_kinds[n]
        ends[name] = ({f"{name}.{n}" for n in ins}, {f"{name}.{n}" for n in outs})
        edges.extend((f"{name}.{a}", f"{name}.{b}") for a, b in inner_edges)
    out = []
    for edge in graph.edges:
        src, dst = str(edge[0]), str(edge[1])
        out.append((_end(src, ends, 1, err, (src, dst)), _end(dst, ends, 0, err, (src, dst))))
    return nodes, kinds, out + edges


def _end(name, ends, side, err, edge):
    """An edge's end with a nested graph's name replaced by its one Input (side 0) or Output
    (side 1); ``G.x`` names a nested node already."""
    if name not in ends:
        return name
    names = sorted(ends[name][side])
    if len(names) != 1:
        what = ("Input", "Output")[side]
        raise err(name, "edges", f"a nested graph with one {what} node, or an edge naming "
                  f"one as '{name}.<node>'", f"{len(names)} {what} nodes in edge {edge}")
    return names[0]


def graph_ends(nodes: dict, kinds: dict, edges) -> tuple[list[str], list[str]]:
    """The graph's inputs and outputs, each in sorted name order (``docs/semantics.md``, "NIR
    graphs", several Inputs and Outputs).

    Parameters
    ----------
    nodes, kinds, edges
        As :func:`flatten` gives them.

    Returns
    -------
    inputs : list of str
        The top-level ``Input`` nodes; when there is none, the ``Input`` nodes of nested graphs
        (identity nodes after :func:`flatten`) that no edge feeds.
    outputs : list of str
        The top-level ``Output`` nodes.
    """
    inputs = sorted(n for n, k in kinds.items() if k == "Input")
    if not inputs:
        fed = {str(dst) for _, dst in edges}
        inputs = sorted(n for n, k in kinds.items()
                        if k == "Identity" and _kind(nodes[n]) == "Input" and n not in fed)
    return inputs, sorted(n for n, k in kinds.items() if k == "Output")


def blockers(kinds: dict, readable, inputs, outputs, edges) -> list[tuple[str, str, str]]:
    """Every node refsnn cannot read, a graph without inputs or outputs, and an input that
    feeds no node.

    Parameters
    ----------
    kinds : dict of str to str
        Node name -> NIR class name (after :func:`flatten`).
    readable : collection of str
        The NIR class names refsnn reads (besides ``Input`` and ``Output``).
    inputs, outputs : sequence of str
        The graph's inputs and outputs (:func:`graph_ends`).
    edges : iterable of (str, str)
        The edges (after :func:`flatten`).

    Returns
    -------
    list of (name, type, reason)
        In the graph's order; name and type are empty for a missing input or output.
    """
    found = [(name, kind, "no reader")
             for name, kind in kinds.items()
             if kind not in ("Input", "Output") and kind not in readable]
    sources = {str(src) for src, _ in edges}
    found += [(name, "Input", "no edge leaves it") for name in inputs if name not in sources]
    if not inputs or not outputs:
        found.append(("", "", f"{len(inputs)} Input and {len(outputs)} Output nodes (refsnn "
                      f"reads at least one of each)"))
    return found


def refuse(file: str, found: list[tuple[str, str, str]]) -> ModelFormatError:
    """One error naming every blocker: a single one as ``/node/nodes/NAME: type``; several as
    ``/node/nodes: type``, grouped by type (``TYPE at NAME, NAME (reason)``), so that the
    one-line message stays short."""
    if len(found) == 1:
        name, kind, reason = found[0]
        if not name:
            return ModelFormatError(file, "/node/nodes", "nodes",
                                    "at least one Input and one Output node", reason)
        return ModelFormatError(file, f"/node/nodes/{name}", "type",
                                "a node refsnn simulates", f"{kind} ({reason})")
    groups = {}
    for name, kind, reason in found:
        groups.setdefault((kind, reason), []).append(name)
    listed = "; ".join(f"{kind} at {', '.join(names)} ({reason})" if kind else reason
                       for (kind, reason), names in groups.items())
    return ModelFormatError(file, "/node/nodes", "type", "nodes refsnn simulates",
                            f"{len(found)} blockers: {listed}")


def dfs_order(names, succs: dict, start) -> tuple[list[str], set[tuple[str, str]]]:
    """Node order and recurrent edges by the rule in the module docstring.

    Parameters
    ----------
    names : iterable of str
        Every node.
    succs : dict of str to list of str
        Each node's successors (any order; they are visited sorted by name).
    start : str or list of str
        The Input node, or the graph's inputs in sorted name order (searched from first).

    Returns
    -------
    order : list of str
        Every node after all its non-recurrent predecessors (reverse finishing order).
    back : set of (str, str)
        The recurrent edges ``(source, destination)``.
    """
    state, finished, back = {}, [], set()  # state: 1 on the path, 2 finished
    starts = [start] if isinstance(start, str) else list(start)
    for root in starts + sorted(set(names) - set(starts)):
        if state.get(root):
            continue
        state[root] = 1
        stack = [(root, iter(sorted(set(succs[root]))))]
        while stack:
            name, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                state[name] = 2
                finished.append(name)
            elif state.get(nxt) == 1:
                back.add((name, nxt))
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(sorted(set(succs[nxt])))))
    return finished[::-1], back
