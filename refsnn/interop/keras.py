"""Read Keras models (legacy ``.h5`` and Keras 3 ``.keras``) with h5py, json and zipfile only.

No TensorFlow or Keras is imported. The result is an ordinary refsnn
:class:`~refsnn.model.graph.Graph` in refsnn's layout:

- **images are channels-first**: a Keras image tensor ``(H, W, C)`` is the refsnn tensor
  ``(C, H, W)``, so the model's input shape is ``(C, H, W)`` and data must be given as NCHW
  (``x_keras.transpose(0, 3, 1, 2)``); conv kernels ``(kh, kw, cin, cout)`` become
  ``(cout, cin, kh, kw)``, depthwise kernels ``(kh, kw, cin, m)`` a grouped conv with
  ``groups = cin`` and output channel ``c·m + j``;
- ``Flatten`` of an image first transposes ``(C, H, W)`` back to Keras' ``(H, W, C)`` order, so
  the ``Dense`` after it keeps its weights: the outputs are Keras' own, not a permutation;
- vectors ``(N,)`` and sequences ``(T, D)`` keep their layout; ``Dense`` acts on the last axis
  (a ``linear`` map of vectors and sequences; on an image, whose last Keras axis is the
  channels, a 1x1 ``conv2d``); ``Reshape``, ``Permute`` and ``Split`` work in Keras' order.

Layer weights come from ``model_weights/<layer>/<weight name>`` (``.h5``) or
``layers/<snake_case class>[_k]/vars/<i>`` (``.keras``, the path Keras' own loader computes).
Unsupported layers or settings are refused with a :class:`~refsnn.errors.ModelFormatError`
naming the layer and its class. This module reads the files and wires the layers; the readers
of each layer class are in :mod:`refsnn.interop.keras_layers`.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib

import h5py
import numpy as np

from refsnn.errors import ModelFormatError
from refsnn.interop.keras_layers import LAYERS, Builder, Refused
from refsnn.io import H5_ERRORS, attr_names, read_dataset, read_h5
from refsnn.model.graph import INPUT, Graph, make_graph


def _snake(name: str) -> str:
    # Keras' naming.to_snake_case, which names the weight groups of a .keras archive
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _history(arg):
    """The ``keras_history`` names of a call's tensor arguments (nested lists allowed)."""
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        return [_tensor(*arg["config"]["keras_history"])]
    if isinstance(arg, (list, tuple)):
        return [n for a in arg for n in _history(a)]
    return []


def _tensor(layer, node=0, index=0, *rest) -> str:
    """The key of output ``index`` of a layer: its name, ``name#i`` for a later output."""
    return f"{layer}#{index}" if index else layer


def _unread_kwarg(kwargs) -> str | None:
    """A call's keyword argument that would change the result and is not read (any value but
    None or False: a mask, ``key=`` given by keyword, ``use_causal_mask=True``,
    ``training=True``...), as ``"name=value"``; None if there is none."""
    for k, v in (kwargs if isinstance(kwargs, dict) else {}).items():
        if v is not None and v is not False:
            return f"{k}={repr(v)[:60]}"
    return None


def _inbound(call, file, name):
    """Input layer names of one call, Keras 3 ``{"args": [...], "kwargs": {...}}`` or Keras 2
    ``[[layer, node, tensor, kwargs], ...]``, and an unread keyword argument (or None)."""
    if isinstance(call, dict):
        return _history(call.get("args", [])), _unread_kwarg(call.get("kwargs"))
    if isinstance(call, list) and all(isinstance(e, list) and e and isinstance(e[0], str)
                                      for e in call):
        unread = [u for e in call if (u := _unread_kwarg(e[3] if len(e) > 3 else None))]
        return [_tensor(*e[:3]) for e in call], (unread or [None])[0]
    raise ModelFormatError(file, f"/layers/{name}", "inbound_nodes",
                           "Keras 3 {'args': ...} or Keras 2 [[layer, node, tensor, kwargs]]",
                           repr(call)[:80])


def _layers(config, file):
    """``(class, name, config, inbound names, unread keyword argument or None)`` in file
    order, and the output name."""
    cls = config.get("class_name")
    cfg = config.get("config", {})
    if cls == "Sequential":
        layers, prev = [], None
        for layer in cfg.get("layers", []):
            name = layer["config"]["name"]
            layers.append((layer["class_name"], name, layer["config"], [prev] if prev else [],
                           None))
            prev = name
        return layers, prev
    if cls in ("Functional", "Model"):
        layers = []
        for layer in cfg.get("layers", []):
            calls = layer.get("inbound_nodes", [])
            if len(calls) > 1:
                raise ModelFormatError(file, f"/layers/{layer['name']}", "inbound_nodes",
                                       "a layer called once (shared layers are not supported)",
                                       f"{len(calls)} calls")
            srcs, unread = _inbound(calls[0], file, layer["name"]) if calls else ([], None)
            layers.append((layer["class_name"], layer["name"], layer["config"], srcs, unread))
        outs = cfg.get("output_layers", [])
        outs = [outs] if outs and isinstance(outs[0], str) else outs
        if len(outs) != 1:
            raise ModelFormatError(file, "/", "output_layers", "one output", str(outs))
        return layers, _tensor(*outs[0][:3])
    raise ModelFormatError(file, "/", "class_name", "Sequential or Functional", repr(cls))


def build_graph(config: dict, weights: dict, file: str, dtype=np.float64) -> Graph:
    """A refsnn graph from a Keras model config and ``{layer name: [arrays]}``.

    Raises
    ------
    ModelFormatError
        For an unsupported layer class or setting (naming the layer and its class) or a
        malformed config.
    """
    layers, output = _layers(config, file)
    b = Builder()
    names: dict[str, str] = {}  # Keras layer name -> refsnn name of its output
    input_shape = None
    for cls, name, cfg, srcs, unread in layers:
        path = f"/layers/{name}"
        if cls == "InputLayer":
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            if input_shape is not None or shape is None or None in shape[1:]:
                raise ModelFormatError(file, path, "batch_shape",
                                       "one input with a fixed per-sample shape", str(shape))
            keras_shape = tuple(int(s) for s in shape[1:])
            input_shape = (keras_shape[2],) + keras_shape[:2] if len(keras_shape) == 3 \
                else keras_shape
            names[name] = INPUT
            b.shapes[INPUT] = keras_shape
            continue
        reader = LAYERS.get(cls)
        if reader is None:
            raise ModelFormatError(file, path, "class_name",
                                   f"a supported layer ({', '.join(['InputLayer', *LAYERS])})",
                                   f"{cls} (layer '{name}')")
        if unread is not None:
            raise ModelFormatError(file, path, "inbound_nodes", f"call arguments refsnn reads "
                                   f"(layer '{name}', class {cls}; keyword arguments only None "
                                   f"or False)", unread)
        for w in weights.get(name, []):
            w = np.asarray(w)
            if w.dtype.kind not in "fiu":  # complex would be cast silently, strings fail late
                raise ModelFormatError(file, path, "weights", f"real numbers (layer '{name}')",
                                       f"{w.dtype} {w.shape}")
        try:
            missing = [s for s in srcs if s not in names]
            if missing or not srcs:
                raise Refused(f"inputs {srcs} (layers not read before it)")
            out = reader(b, name, cfg, [names[s] for s in srcs],
                         [np.asarray(w, dtype=np.float64) for w in weights.get(name, [])])
            outs = out if isinstance(out, list) else [out]  # a layer of several outputs
            names.update({_tensor(name, 0, i): o for i, o in enumerate(outs)})
        except Refused as e:
            raise ModelFormatError(file, path, "config", f"settings refsnn can express "
                                   f"(layer '{name}', class {cls})", str(e)) from None
        except (KeyError, IndexError, ValueError) as e:
            raise ModelFormatError(file, path, "weights", f"the weights of a {cls} layer",
                                   f"{type(e).__name__}: {e}") from None
    if input_shape is None:
        raise ModelFormatError(file, "/layers", "InputLayer", "an input layer", "none")
    out = names.get(output)
    if out is None or out == INPUT:
        raise ModelFormatError(file, "/", "output", "a layer's output", repr(output))
    return make_graph(input_shape, b.nodes, out, file=file, dtype=dtype)


def _config(text, file: str, where: str) -> dict:
    """A Keras model config (a JSON object) from a string or bytes attribute or file."""
    try:
        config = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except (TypeError, ValueError) as e:  # not text, not UTF-8, not JSON
        raise ModelFormatError(file, where, "model_config", "a Keras model config (JSON)",
                               f"{type(e).__name__}: {e}") from None
    if not isinstance(config, dict):
        raise ModelFormatError(file, where, "model_config", "a JSON object",
                               type(config).__name__)
    return config


#: What interpreting a malformed (but valid JSON) config raises: a missing key, a list where
#: a dict belongs, a string where a number belongs, ...
_CONFIG_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError)


def _build(config, weights, file, dtype) -> Graph:
    """:func:`build_graph`, with any error of a malformed config as a ModelFormatError."""
    try:
        return build_graph(config, weights, file, dtype)
    except _CONFIG_ERRORS as e:
        raise ModelFormatError(file, "/", "model_config", "a Keras model config refsnn "
                               "understands", f"{type(e).__name__}: {e}") from None


def load_keras_h5(path, dtype=np.float64) -> Graph:
    """Read a legacy Keras HDF5 file (``model.save("m.h5")``): ``model_config`` and
    ``model_weights/<layer>/<weight name>`` in each layer's ``weight_names`` order."""
    return _build(*read_h5(path, "Keras model file", _h5_parts), str(path), dtype)


def _h5_parts(f, file: str):
    """The config and ``{layer: [arrays]}`` of an open legacy Keras file."""
    if "model_config" not in f.attrs:
        raise ModelFormatError(file, "/", "model_config", "a Keras model config",
                               "nothing (missing)")
    config = _config(f.attrs["model_config"], file, "/")
    weights = {}
    group = f.get("model_weights")
    if not isinstance(group, h5py.Group):
        raise ModelFormatError(file, "/model_weights", "group", "the layers' weights",
                               "nothing (missing)" if group is None else "a dataset")
    for name, g in group.items():
        where = f"/model_weights/{name}"
        if not isinstance(g, h5py.Group):
            raise ModelFormatError(file, where, "kind", "a group per layer", "a dataset")
        names = attr_names(g.attrs.get("weight_names", np.array([], dtype=object)),
                       lambda found: ModelFormatError(file, where, "weight_names",
                                                      "a string array", found))
        for n in names:
            if n not in g:
                raise ModelFormatError(file, f"{where}/{n}", "dataset", "a weight named in "
                                       "weight_names", "nothing (missing)")
        weights[name] = [read_dataset(g, n, file, f"{where}/{n}") for n in names]
    return config, weights


#: Layer class -> its sub-layers whose variables a ``.keras`` archive stores under the
#: layer's group (``layers/<layer>/<sub-layer>/vars``), in the order of the legacy ``.h5``.
SUBLAYERS = {"MultiHeadAttention": ("query_dense", "key_dense", "value_dense", "output_dense")}


def _vars(h5, where, name, file):
    """The arrays ``0, 1, ...`` of a ``vars`` group, ``[]`` without one; checks its name."""
    g = h5.get(where)
    if g is None:
        return []
    if not isinstance(g, h5py.Group):
        raise ModelFormatError(file, where, "kind", "a group of variables", "a dataset")
    stored = g.attrs.get("name")
    if name is not None and stored is not None and not (isinstance(stored, str) and
                                                        stored == name):
        raise ModelFormatError(file, where, "name", repr(name), repr(stored))
    for i in range(len(g)):
        if str(i) not in g:
            raise ModelFormatError(file, f"{where}/{i}", "dataset", f"variables 0..{len(g) - 1}",
                                   "nothing (missing)")
    return [read_dataset(g, str(i), file, f"{where}/{i}") for i in range(len(g))]


def _archive_weights(config, h5: h5py.File, file):
    """Each layer's variables in a ``.keras`` archive, at the path Keras' loader uses."""
    layers, _ = _layers(config, file)
    used: dict[str, int] = {}
    weights = {}
    for cls, name, cfg, *_ in layers:
        key = _snake(cls)
        used[key] = used.get(key, -1) + 1
        key = key if used[key] == 0 else f"{key}_{used[key]}"
        weights[name] = _vars(h5, f"/layers/{key}/vars", name, file)
        for sub in SUBLAYERS.get(cls, ()):
            weights[name] += _vars(h5, f"/layers/{key}/{sub}/vars", None, file)
    return weights


def load_keras_archive(path, dtype=np.float64) -> Graph:
    """Read a Keras 3 ``.keras`` archive (a zip of ``config.json`` and ``model.weights.h5``)."""
    file = str(path)
    try:
        with zipfile.ZipFile(path) as z:
            text = z.read("config.json")
            blob = z.read("model.weights.h5")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, OSError, ValueError, EOFError,
            RuntimeError, NotImplementedError, zlib.error) as e:
        raise ModelFormatError(file, "/", "file", "a .keras archive with config.json and "
                               "model.weights.h5", f"unreadable ({e})") from None
    config = _config(text, file, "config.json")
    try:
        with h5py.File(io.BytesIO(blob), "r") as h5:
            weights = _archive_weights(config, h5, file)
    except _CONFIG_ERRORS + H5_ERRORS as e:  # a damaged weights file, or a config without
        raise ModelFormatError(file, "model.weights.h5", "file", "readable weights for the "
                               "config's layers", f"{type(e).__name__}: {e}") from None
    return _build(config, weights, file, dtype)
