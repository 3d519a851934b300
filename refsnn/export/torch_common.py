"""What the PyTorch exporter shares: its tracer, its refusal type, the element-wise handler,
how a handler binds a call's arguments, and how refusals name the user's code (module path and
class, a function's public name, the source line).

Part of :mod:`refsnn.export.torch` (needs torch).
"""

from __future__ import annotations

import inspect
import operator

import numpy as np
import torch
import torch.nn.functional as F
from torch.fx import GraphModule, Node as FxNode, Tracer


def to_numpy(t) -> np.ndarray:
    """A float64 NumPy copy of the tensor ``t`` (any shape)."""
    return t.detach().to(torch.float64).cpu().numpy().copy()


def pair(v) -> tuple[int, ...]:
    """``(v, v)`` for an int, else ``v`` as a tuple of ints (kernel sizes, strides, ...)."""
    return (int(v), int(v)) if isinstance(v, int) else tuple(int(i) for i in v)


class _ScopedTracer(Tracer):
    """torch.fx's tracer, recording for every node the user's module it was traced in
    (``node.meta["refsnn_scope"] = (path, class name)``) and the user's source line."""

    def __init__(self):
        super().__init__()
        self.record_stack_traces = True
        self.user_scope: list[tuple[str, str]] = []

    def call_module(self, m, forward, args, kwargs):
        self.user_scope.append((self.path_of_module(m), type(m).__name__))
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self.user_scope.pop()

    def create_node(self, *args, **kwargs):
        node = super().create_node(*args, **kwargs)
        if self.user_scope:
            node.meta["refsnn_scope"] = self.user_scope[-1]
        return node


def trace(model) -> GraphModule:
    """``model`` traced by torch.fx, each node tagged with the user's module and source line."""
    tracer = _ScopedTracer()
    graph = tracer.trace(model)
    return GraphModule(tracer.root, graph, type(model).__name__)


class Refused(Exception):
    """A reason an operation cannot be expressed; becomes a ConversionError with its name."""


def unary(op: str, **attr_of):
    """Handler of an element-wise module, function or method: refsnn ``op`` on the first
    argument, ``attr_of`` mapping refsnn attrs to functions of the module (None if a call)."""
    def handler(ex, node, m=None):
        attrs = {k: f(m) for k, f in attr_of.items()}
        return ex.emit(node, op, [ex.src(node.args[0])], attrs)
    return handler


def bind(signature, node: FxNode) -> dict:
    """``{parameter: value}`` of ``node``'s call bound to the Python function ``signature``
    (defaults filled in)."""
    bound = inspect.signature(signature).bind(*node.args, **node.kwargs)
    bound.apply_defaults()
    return bound.arguments


def _public_name(fn) -> str:
    """A function's public dotted name (``torch.cat``, ``F.relu``, ``operator.mul``), not
    its internal one (``torch._VariableFunctionsClass.cat``)."""
    for prefix, mod in (("torch", torch), ("F", F), ("operator", operator)):
        name = getattr(fn, "__name__", None)
        if name and getattr(mod, name, None) is fn:
            return f"{prefix}.{name}"
    name = getattr(fn, "__qualname__", None) or str(fn)
    mod = getattr(fn, "__module__", None) or ""
    return f"{mod}.{name}" if mod else name


def _where(node: FxNode) -> str:
    """The user's source line that made ``node`` (the innermost frame outside torch and
    refsnn's exporter), as `` at net.py, line 12``; or ''."""
    import os

    skip = (os.path.dirname(torch.__file__), os.path.abspath(__file__))
    where = ""
    for line in (node.stack_trace or "").splitlines():
        parts = line.strip().split('"')  # File "path/to/net.py", line 12, in forward
        if not parts[0].startswith("File") or len(parts) < 3:
            continue
        path = os.path.abspath(parts[1])
        if path.startswith(skip[0]) or path == skip[1]:
            continue
        number = parts[2].split(",")[1].strip() if parts[2].count(",") >= 1 else ""
        where = f" at {os.path.basename(path)}{', ' + number if number else ''}"
    return where


def describe(node: FxNode, modules) -> str:
    """How a refusal names a traced node: the user's module path and class, or the function or
    method with the module it was called in and the source line."""
    if node.op == "call_module":
        return f"module '{node.target}' ({type(modules[node.target]).__name__})"
    scope = node.meta.get("refsnn_scope")
    inside = f" in module '{scope[0]}' ({scope[1]})" if scope else ""
    if node.op == "call_method":
        return f"tensor method .{node.target}() (node '{node.name}'){inside}{_where(node)}"
    if node.op == "call_function":
        return (f"function {_public_name(node.target)} (node '{node.name}'){inside}"
                f"{_where(node)}")
    return f"node '{node.name}' ({node.op} {node.target}){inside}"


def channels_last_hint(shape) -> str:
    """A hint for a per-sample ``shape`` that looks channels-last, or ''."""
    if len(shape) == 3 and shape[2] in (1, 3, 4) and shape[0] not in (1, 3, 4):
        c, h, w = shape[2], shape[0], shape[1]
        return (f"; the shape looks channels-last (H, W, C): PyTorch and refsnn take "
                f"channels-first (C, H, W), i.e. --input-shape {c},{h},{w} and data "
                f"transposed with x.transpose(0, 3, 1, 2)")
    return ""
