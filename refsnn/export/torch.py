"""Export a ``torch.nn.Module`` to refsnn's HDF5 model format (needs torch; optional extra).

The module is traced with ``torch.fx`` in eval mode (BatchNorm uses its running statistics,
Dropout is the identity) on a float64 copy, and every traced operation is looked up in one of
three registries: :data:`MODULES` (leaf modules, by exact class), :data:`FUNCTIONS` (functions
such as ``F.relu``, ``torch.flatten``, ``operator.add``) and :data:`METHODS` (tensor methods such
as ``x.view``). Anything not in them is refused with a :class:`~refsnn.errors.ConversionError`
naming the traced node and its module class or function: nothing is dropped silently.

Shapes: refsnn's are per sample; the batch axis of ``example_input`` is axis 0 and must stay
axis 0 (a reshape that merges it is refused). Reshapes take their target shape from the traced
output shape, so ``x.view(x.size(0), -1)`` and ``torch.flatten(x, 1)`` both work.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import operator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.fx import Node as FxNode
from torch.fx.passes.shape_prop import ShapeProp

import refsnn.export.torch_structure as structure
from refsnn.errors import ConversionError, ModelFormatError, OptionError
from refsnn.export.torch_common import (Refused, bind, channels_last_hint, describe, pair, to_numpy,
                                        trace, unary)
from refsnn.interop.nodes import shape_text
from refsnn.model.format import save_model
from refsnn.model.graph import INPUT, Graph, make_graph


class _Exporter:
    """Walks the traced graph and collects refsnn node dicts: one method per torch.fx node kind
    (``node.op``), as :class:`torch.fx.Interpreter` dispatches."""

    def __init__(self, gm):
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.nodes: list[dict] = []
        self.names: dict[FxNode, str] = {}  # fx node -> refsnn name of its tensor value
        self.consts: dict[FxNode, torch.Tensor] = {}  # get_attr parameters and buffers
        self.pieces: dict[FxNode, tuple] = {}  # chunk/split node -> (source, slices)
        self.origin: dict[str, FxNode] = {}  # refsnn node name -> the fx node it came from
        self.result: str | None = None  # refsnn name of the output

    # the node kinds ---------------------------------------------------------------------------
    def placeholder(self, node):
        self.names[node] = INPUT

    def get_attr(self, node):
        self.consts[node] = operator.attrgetter(node.target)(self.gm).detach()

    def call_module(self, node):
        handler = MODULES.get(type(self.modules[node.target]))
        if handler is None:
            raise Refused("no refsnn operator for this module class")
        self.names[node] = handler(self, node, self.modules[node.target])

    def call_function(self, node):
        self._call(node, "function", lambda: FUNCTIONS.get(node.target) or NAMED_FUNCTIONS.get(
            f"{getattr(node.target, '__module__', '')}.{getattr(node.target, '__qualname__', '')}"))

    def call_method(self, node):
        self._call(node, "tensor method", lambda: METHODS.get(node.target))

    def _call(self, node, what, find_handler):
        if node.target in (torch.chunk, torch.split, "chunk", "split"):
            find_handler()(self, node)  # remembers the pieces: each one taken becomes a slice
        elif "tensor_meta" not in node.meta:
            # a size or an int, e.g. x.size(0): only reshapes read it, and they use the traced
            # shape instead; likewise arithmetic on sizes and shape asserts (torch._assert),
            # which read no tensor
            if node.target not in SIZE_FUNCTIONS and node.target not in SIZE_METHODS and \
                    any(a in self.names for a in node.all_input_nodes):
                raise Refused("its value is not a tensor")
        else:
            handler = find_handler()
            if handler is None:
                raise Refused(f"no refsnn operator for this {what}")
            self.names[node] = handler(self, node)

    def output(self, node):
        if not isinstance(node.args[0], FxNode):
            raise Refused("the output must be one tensor")
        self.result = self.src(node.args[0])

    # helpers used by the handlers -----------------------------------------------------------
    def src(self, arg) -> str:
        """The refsnn name of a tensor argument; refuses constants and non-tensors."""
        if isinstance(arg, FxNode) and arg in self.names:
            return self.names[arg]
        raise Refused(f"argument {arg!r} is not a tensor computed from the input")

    @staticmethod
    def shape(node: FxNode) -> tuple[int, ...]:
        """Per-sample shape of a traced tensor (the batch axis dropped)."""
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise Refused("its value is not a single tensor")
        return tuple(int(s) for s in meta.shape[1:])

    def emit(self, node: FxNode, op: str, inputs, attrs=None, params=None, suffix="") -> str:
        # fx names the children of a bare nn.Sequential "_0", "_1", ...: say "layer_0"
        name = ("layer" + node.name if node.name.startswith("_") else node.name) + suffix
        self.nodes.append(dict(name=name, op=op, inputs=list(inputs),
                               attrs=dict(attrs or {}), params=dict(params or {})))
        self.origin[name] = node
        return name


# --- leaf modules -----------------------------------------------------------------------------

def _conv2d(ex, node, m: nn.Conv2d):
    if m.padding_mode != "zeros":
        raise Refused(f"padding_mode={m.padding_mode!r} (refsnn pads with zeros)")
    if pair(m.dilation) != (1, 1):
        raise Refused(f"dilation={m.dilation} (refsnn convolves with dilation 1)")
    padding, src = m.padding, ex.src(node.args[0])
    if isinstance(padding, str):  # 'valid', or 'same' (stride 1): total k - 1, the extra after
        k = pair(m.kernel_size)
        if padding == "valid":
            padding = (0, 0)
        elif all(i % 2 for i in k):
            padding = (k[0] // 2, k[1] // 2)
        else:
            k0, k1 = k
            rows, cols = ((k0 - 1) // 2, k0 // 2), ((k1 - 1) // 2, k1 // 2)
            src = ex.emit(node, "pad", [src], dict(rows=rows, cols=cols), suffix=".pad")
            padding = (0, 0)
    bias = to_numpy(m.bias) if m.bias is not None else np.zeros(m.out_channels)
    return ex.emit(node, "conv2d", [src],
                   dict(stride=pair(m.stride), padding=pair(padding), groups=int(m.groups)),
                   dict(weight=to_numpy(m.weight), bias=bias))


def _linear(ex, node, m: nn.Linear):
    bias = to_numpy(m.bias) if m.bias is not None else np.zeros(m.out_features)
    return ex.emit(node, "linear", [ex.src(node.args[0])], params=dict(weight=to_numpy(m.weight),
                                                                       bias=bias))


def _batchnorm(ex, node, m):
    if m.running_mean is None:
        raise Refused("BatchNorm without running statistics (track_running_stats=False)")
    c = m.num_features
    gamma = to_numpy(m.weight) if m.weight is not None else np.ones(c)
    beta = to_numpy(m.bias) if m.bias is not None else np.zeros(c)
    return ex.emit(node, "batchnorm", [ex.src(node.args[0])], dict(eps=float(m.eps)),
                   dict(gamma=gamma, beta=beta, mean=to_numpy(m.running_mean),
                        var=to_numpy(m.running_var)))


def _window_attrs(m) -> dict:
    """kernel, stride (PyTorch's default: the kernel) and padding of a pooling module."""
    stride = m.stride if m.stride not in (None, ()) else m.kernel_size
    return dict(kernel=pair(m.kernel_size), stride=pair(stride), padding=pair(m.padding))


def _unsupported(m, allowed: dict) -> None:
    """Refuse naming every setting of ``m`` that is not its ``allowed`` value."""
    bad = [f"{k}={getattr(m, k)!r}" for k, v in allowed.items() if getattr(m, k) != v]
    if bad:
        wanted = ", ".join(f"{k}={v!r}" for k, v in allowed.items())
        raise Refused(f"{', '.join(bad)} is not supported (refsnn pools with {wanted})")


def _avgpool(ex, node, m: nn.AvgPool2d):
    _unsupported(m, dict(ceil_mode=False, count_include_pad=True, divisor_override=None))
    return ex.emit(node, "avgpool2d", [ex.src(node.args[0])], _window_attrs(m))


def _maxpool(ex, node, m: nn.MaxPool2d):
    _unsupported(m, dict(return_indices=False))
    if pair(m.dilation) != (1, 1):
        raise Refused(f"dilation={m.dilation!r} is not supported (refsnn pools with "
                      f"dilation=1)")
    return ex.emit(node, "maxpool2d", [ex.src(node.args[0])],
                   dict(_window_attrs(m), ceil_mode=int(bool(m.ceil_mode))))


def _adaptive_avgpool(ex, node, m: nn.AdaptiveAvgPool2d):
    _, h, w = ex.shape(node.args[0])
    size = m.output_size
    oh, ow = (size, size) if isinstance(size, int) else size
    oh, ow = oh or h, ow or w
    if h % oh or w % ow:
        raise Refused(f"output size {(oh, ow)} does not divide the input size {(h, w)}")
    # equal windows, so it is average pooling with kernel = stride = input / output
    k = (h // oh, w // ow)
    return ex.emit(node, "avgpool2d", [ex.src(node.args[0])], dict(kernel=k, stride=k))


def _softmax(ex, node, m):
    op = "log_softmax" if isinstance(m, nn.LogSoftmax) else "softmax"
    rank = len(ex.shape(node.args[0])) + 1
    if m.dim is None or m.dim % rank != rank - 1:
        raise Refused(f"{op} over dim={m.dim} (refsnn's {op} is over the last axis, "
                      f"dim=-1)")
    return ex.emit(node, op, [ex.src(node.args[0])])


def _alias(ex, node, m=None):
    return ex.src(node.args[0])  # Dropout in eval mode, Identity, contiguous(): the input


def _reshape(ex, node, m=None):
    """Any reshape or flatten: the target is the traced output shape (batch axis kept)."""
    src = node.args[0]
    batch_in = src.meta["tensor_meta"].shape[0]
    meta = node.meta["tensor_meta"]
    if meta.shape[0] != batch_in:
        raise Refused("it merges or moves the batch axis (axis 0)")
    out = ex.shape(node)
    if len(out) == 1:
        return ex.emit(node, "flatten", [ex.src(src)])
    return ex.emit(node, "reshape", [ex.src(src)], dict(shape=shape_text(out)))


MODULES = {
    nn.Conv2d: _conv2d,
    nn.Linear: _linear,
    nn.BatchNorm1d: _batchnorm,
    nn.BatchNorm2d: _batchnorm,
    nn.ReLU: unary("relu"),
    nn.LeakyReLU: unary("leaky_relu", slope=lambda m: float(m.negative_slope)),
    nn.GELU: unary("gelu", approximate=lambda m: m.approximate),
    nn.SiLU: unary("silu"),
    nn.Sigmoid: unary("sigmoid"),
    nn.Tanh: unary("tanh"),
    nn.Hardtanh: unary("hardtanh", min_value=lambda m: float(m.min_val),
                        max_value=lambda m: float(m.max_val)),
    nn.AvgPool2d: _avgpool,
    nn.MaxPool2d: _maxpool,
    nn.AdaptiveAvgPool2d: _adaptive_avgpool,
    nn.Softmax: _softmax,
    nn.LogSoftmax: _softmax,
    nn.Hardswish: unary("hardswish"),
    nn.Hardsigmoid: unary("hardsigmoid"),
    nn.Flatten: _reshape,
    nn.Identity: _alias,
    nn.Dropout: _alias,
    nn.Dropout2d: _alias,
    nn.AlphaDropout: _alias,
    **structure.MODULES,
}
"""Leaf module class (exact) -> handler ``(exporter, fx_node, module) -> refsnn name``."""


# --- functions and tensor methods ---------------------------------------------------------------

def _via_module(cls, signature):
    """A functional form handled as its module: bind the call to ``signature`` and build
    ``cls(**arguments)`` (e.g. ``F.avg_pool2d(x, 2)`` as ``nn.AvgPool2d(2)``)."""
    sig = inspect.signature(signature)

    def handler(ex, node):
        bound = sig.bind(*node.args, **node.kwargs)
        bound.apply_defaults()
        kwargs = dict(bound.arguments)
        kwargs.pop("input")
        accepted = inspect.signature(cls.__init__).parameters
        for key in [k for k in kwargs if k not in accepted or k == "inplace"]:
            # arguments the module does not take must be at their defaults (no effect);
            # inplace and softmax's warning-only _stacklevel change no value
            value = kwargs.pop(key)
            if value != sig.parameters[key].default and key not in ("inplace", "_stacklevel"):
                raise Refused(f"argument {key}={bound.arguments[key]!r}")
        return MODULES[cls](ex, node, cls(**kwargs))
    return handler


def _sig_softmax(input, dim=None, _stacklevel=3, dtype=None):
    pass  # the signature of F.softmax and F.log_softmax (and their torch. and method forms)


def _add(ex, node):
    if node.kwargs.get("alpha", 1) != 1:
        raise Refused("add with alpha != 1")
    args = node.args[:2]
    for x in args:
        if not (isinstance(x, FxNode) and x in ex.names):
            raise Refused(f"adds the constant {x!r} (refsnn adds tensors only)")
    return ex.emit(node, "add", [ex.src(x) for x in args])


def _dims(node, rank, dims):
    """Normalise dims (ints or a sequence, negatives allowed) against the full rank."""
    dims = [dims] if isinstance(dims, int) else list(dims)
    return sorted(d % rank for d in dims)


def _mean(ex, node):
    a = bind(lambda input, dim=None, keepdim=False, dtype=None: None, node)
    shape = ex.shape(node.args[0])
    rank = len(shape) + 1
    if a["dim"] is None:
        raise Refused("a mean over every axis including the batch")
    dims = [d - 1 for d in _dims(node, rank, a["dim"])]
    r = len(shape)
    axes = {(r - 1,): "last", (0,): "channel", tuple(range(1, r)): "spatial"}
    axis = axes.get(tuple(dims))
    if axis is None or -1 in dims:
        raise Refused(f"a mean over per-sample axes {dims} (refsnn: the last, the channels "
                      f"(0) or all axes after the channels)")
    return ex.emit(node, "mean", [ex.src(node.args[0])],
                   dict(axis=axis, keepdims=int(bool(a["keepdim"]))))


def _permute(ex, node):
    rank = len(ex.shape(node.args[0])) + 1
    if node.target == "transpose" or node.target is torch.transpose:
        d0, d1 = (d % rank for d in node.args[1:3])
        perm = list(range(rank))
        perm[d0], perm[d1] = perm[d1], perm[d0]
    else:
        dims = node.args[1:]
        dims = dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims
        perm = [d % rank for d in dims]
    if perm[0] != 0:
        raise Refused("it moves the batch axis (axis 0)")
    return ex.emit(node, "transpose", [ex.src(node.args[0])],
                   dict(perm=shape_text(p - 1 for p in perm[1:])))


FUNCTIONS = {
    F.relu: unary("relu"),
    torch.relu: unary("relu"),
    F.silu: unary("silu"),
    torch.sigmoid: unary("sigmoid"),
    F.sigmoid: unary("sigmoid"),
    torch.tanh: unary("tanh"),
    F.tanh: unary("tanh"),
    F.gelu: _via_module(nn.GELU, lambda input, approximate="none": None),
    F.leaky_relu: _via_module(nn.LeakyReLU, lambda input, negative_slope=0.01, inplace=False:
                              None),
    F.avg_pool2d: _via_module(nn.AvgPool2d, lambda input, kernel_size, stride=None, padding=0,
                              ceil_mode=False, count_include_pad=True, divisor_override=None: None),
    F.max_pool2d: _via_module(nn.MaxPool2d, lambda input, kernel_size, stride=None, padding=0,
                              dilation=1, ceil_mode=False, return_indices=False: None),
    F.adaptive_avg_pool2d: _via_module(nn.AdaptiveAvgPool2d, lambda input, output_size: None),
    F.softmax: _via_module(nn.Softmax, _sig_softmax),
    torch.softmax: _via_module(nn.Softmax, _sig_softmax),
    F.log_softmax: _via_module(nn.LogSoftmax, _sig_softmax),
    torch.log_softmax: _via_module(nn.LogSoftmax, _sig_softmax),
    F.hardswish: unary("hardswish"),
    F.hardsigmoid: unary("hardsigmoid"),
    F.interpolate: _via_module(nn.Upsample, lambda input, size=None, scale_factor=None,
                               mode="nearest", align_corners=None, recompute_scale_factor=None,
                               antialias=False: None),
    torch.flatten: _reshape,
    torch.reshape: _reshape,
    operator.add: _add,
    operator.iadd: _add,
    torch.add: _add,
    torch.mean: _mean,
    torch.permute: _permute,
    torch.transpose: _permute,
    **structure.FUNCTIONS,
}
"""Function -> handler ``(exporter, fx_node) -> refsnn name``."""

#: Functions of other packages, by ``module.qualname`` (so the package is not imported).
NAMED_FUNCTIONS = dict(structure.NAMED_FUNCTIONS)

METHODS = {
    "relu": unary("relu"),
    "sigmoid": unary("sigmoid"),
    "tanh": unary("tanh"),
    "flatten": _reshape,
    "view": _reshape,
    "reshape": _reshape,
    "contiguous": _alias,
    "log_softmax": _via_module(nn.LogSoftmax, _sig_softmax),
    "softmax": _via_module(nn.Softmax, _sig_softmax),
    "add": _add,
    "mean": _mean,
    "permute": _permute,
    "transpose": _permute,
    **structure.METHODS,
}
"""Tensor method name -> handler ``(exporter, fx_node) -> refsnn name``."""

#: Calls whose result is a size, not a tensor: allowed, and only usable as reshape arguments.
SIZE_FUNCTIONS = (operator.getitem, getattr)
SIZE_METHODS = ("size", "dim")


def to_graph(module: torch.nn.Module, example_input: torch.Tensor, dtype=np.float64) -> Graph:
    """Trace ``module`` and return its refsnn :class:`~refsnn.model.graph.Graph`.

    Parameters
    ----------
    module : torch.nn.Module
        Exported in eval mode (a float64 copy; the module itself is not changed).
    example_input : torch.Tensor, shape (B, *input_shape)
        A batch; fixes the per-sample input shape and every traced shape.
    dtype : {numpy.float64, numpy.float32}
        The graph's parameter dtype (the module is traced in float64 either way; float32
        halves the file).

    Raises
    ------
    ConversionError
        Naming the first traced module, function or method that refsnn cannot express.
    """
    model = copy.deepcopy(module).to(torch.float64).eval()
    try:
        gm = trace(model)
    except Exception as e:  # data-dependent control flow and the like
        raise ConversionError(f"torch.fx cannot trace {type(module).__name__}: "
                              f"{str(e).splitlines()[0]}") from None
    x = torch.as_tensor(example_input).to(torch.float64)
    try:
        # ShapeProp prints a traceback before it raises: keep it off the user's terminal
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            ShapeProp(gm).propagate(x)
    except Exception as e:  # e.g. an input shape the module cannot take
        cause = e.__cause__ or e
        raise ConversionError(f"{type(module).__name__} cannot run on inputs of shape "
                              f"{tuple(x.shape[1:])} (per sample): "
                              f"{str(cause).strip().splitlines()[0]}"
                              f"{channels_last_hint(tuple(x.shape[1:]))}") from None
    ex = _Exporter(gm)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ConversionError(f"{type(module).__name__}.forward takes {len(placeholders)} inputs;"
                              f" refsnn models have one")
    for node in gm.graph.nodes:
        try:
            getattr(ex, node.op)(node)
        except Refused as e:
            raise ConversionError(f"{describe(node, ex.modules)} cannot be exported to refsnn: "
                                  f"{e}") from None
    if ex.result == INPUT:
        raise ConversionError(f"{type(module).__name__} returns its input unchanged")
    try:
        return make_graph(tuple(x.shape[1:]), ex.nodes, ex.result,
                          file=f"<torch {type(module).__name__}>", dtype=dtype)
    except ModelFormatError as e:  # say it in the user's terms, not the format's paths
        name = e.path.rsplit("/", 1)[-1]
        node = ex.origin.get(name)
        what = describe(node, ex.modules) if node is not None else f"node '{name}'"
        raise ConversionError(f"{what} cannot be exported to refsnn: {e.field}: expected "
                              f"{e.expected}, found {e.found}") from None


def from_torch(module: torch.nn.Module, example_input: torch.Tensor, path,
               dtype=np.float64) -> Graph:
    """Trace ``module`` (torch.fx) and write it to ``path`` in refsnn's HDF5 model format.

    Parameters
    ----------
    module : torch.nn.Module
    example_input : torch.Tensor, shape (B, *input_shape)
    path : str or Path
        The model file to write (atomically).
    dtype : {numpy.float64, numpy.float32}
        The parameters' dtype in the file.

    Returns
    -------
    Graph
        The exported graph, as written.
    """
    graph = to_graph(module, example_input, dtype)
    save_model(graph, path)
    return graph


def load_factory(spec: str, weights=None) -> torch.nn.Module:
    """The module ``module.py:factory`` builds, with the state dict ``weights`` loaded.

    Raises
    ------
    OptionError
        For a malformed ``spec``, a missing file or a missing function.
    ConversionError
        If the factory does not return a ``torch.nn.Module`` or the weights do not fit it.
    """
    import importlib.util
    from pathlib import Path

    file, sep, name = spec.rpartition(":")
    if not sep or not file or not name.isidentifier():
        raise OptionError(f"factory: expected 'path/to/module.py:function', found {spec!r}")
    if not Path(file).is_file():
        raise OptionError(f"factory: {file}: no such file")
    mod_spec = importlib.util.spec_from_file_location(Path(file).stem, file)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    factory = getattr(mod, name, None)
    if not callable(factory):
        raise OptionError(f"factory: {file} defines no function {name!r}")
    module = factory()
    if not isinstance(module, torch.nn.Module):
        raise ConversionError(f"{spec} returned {type(module).__name__}, not a torch.nn.Module")
    if weights is not None:
        if not Path(weights).is_file():
            raise OptionError(f"weights: {weights}: no such file")
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            module.load_state_dict(state)
        except Exception as e:  # unpickling or key/shape mismatch: one line, no traceback
            raise ConversionError(f"{weights}: cannot be loaded into {spec}: "
                                  f"{str(e).strip().splitlines()[0]}") from None
    return module
