"""The peers refsnn is measured against: plain dense per-step loops, written here.

Both simulate the same converted network with the same step schedule as refsnn (encode,
then for each node in graph order compute its value of this step from its inputs' values of
this step; IF neurons charge, fire at ``u >= theta``, reset by subtraction or to zero and
emit ``theta``; the readout is the mean of the output node's values). They differ from refsnn
in one thing: every synapse layer does its full dense computation every step (a GEMM for
linear layers, im2col + GEMM or ``F.conv2d`` for convolutions), whatever the number of
spikes. That is the obvious, non-event-driven implementation.

The order of the additions differs from refsnn's event order, so even in float64 a current
can land on the other side of a threshold by one rounding: spike counts then differ by one
now and then. The benchmark reports how often rather than asserting equality.
"""

from __future__ import annotations

import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from refsnn.model.graph import INPUT


def _theta_shape(theta, shape):
    """Per-channel thresholds broadcast against a batch of node values."""
    return theta.reshape((1, -1) + (1,) * (len(shape) - 1))


class DenseNumpy:
    """Dense per-step loop in NumPy (BLAS GEMMs; convolutions by im2col + GEMM).

    Parameters
    ----------
    net : SpikingNetwork
    dtype : numpy dtype
        float64 (refsnn's precision) or float32.
    """

    def __init__(self, net, dtype=np.float64):
        if net.encoding != "analog":
            raise NotImplementedError("the dense peers implement analog encoding only")
        self.graph = net.graph
        self.dtype = np.dtype(dtype)
        self.layers = []
        for node in self.graph.nodes:
            p = {k: np.asarray(v, dtype=self.dtype) for k, v in node.params.items()}
            if node.op == "linear":
                p["w_t"] = np.ascontiguousarray(p["weight"].T)
            elif node.op == "conv2d":
                if node.attrs["groups"] != 1:
                    raise NotImplementedError("dense peer: grouped convolution")
                o = p["weight"].shape[0]
                p["w_t"] = np.ascontiguousarray(p["weight"].reshape(o, -1).T)
            elif node.op == "if":
                p["theta"] = _theta_shape(p["threshold"], self.graph.shapes[node.name])
            elif node.op not in ("avgpool2d", "flatten", "identity", "add", "batchnorm"):
                raise NotImplementedError(f"dense peer: op {node.op}")
            self.layers.append((node, p))
        self.neurons = [n.name for n, _ in self.layers if n.op == "if"]

    # -- one step of each operator ------------------------------------------------------------
    def _padded(self, bufs, name, x, ph, pw):
        if ph == 0 and pw == 0:
            return x
        buf = bufs.get(name)
        if buf is None:
            b, c, h, w = x.shape
            buf = bufs[name] = np.zeros((b, c, h + 2 * ph, w + 2 * pw), dtype=self.dtype)
        buf[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]] = x
        return buf

    def _conv(self, bufs, node, p, x):
        b = x.shape[0]
        _, c, kh, kw = p["weight"].shape
        (sy, sx), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
        o, ho, wo = self.graph.shapes[node.name]
        xp = self._padded(bufs, node.name, x, ph, pw)
        win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sy, ::sx]  # B C Ho Wo kh kw
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(b * ho * wo, c * kh * kw)  # im2col
        out = cols @ p["w_t"]
        out += p["bias"]
        return out.reshape(b, ho, wo, o).transpose(0, 3, 1, 2)

    def _avgpool(self, bufs, node, x):
        (kh, kw), (sy, sx), (ph, pw) = (node.attrs["kernel"], node.attrs["stride"],
                                        node.attrs["padding"])
        _, ho, wo = self.graph.shapes[node.name]
        xp = self._padded(bufs, node.name, x, ph, pw)
        out = None
        for ky in range(kh):
            for kx in range(kw):
                v = xp[:, :, ky:ky + sy * (ho - 1) + 1:sy, kx:kx + sx * (wo - 1) + 1:sx]
                out = v.copy() if out is None else out + v
        return out / (kh * kw)

    @staticmethod
    def _if(state, node, p, x, counts):
        u = state[node.name]
        u += x
        fired = u >= p["theta"]
        spikes = fired * p["theta"]
        if node.attrs["reset"] == "zero":
            u[fired] = 0.0
        else:
            u -= spikes
        counts[node.name] += fired
        return spikes

    # -- the run --------------------------------------------------------------------------------
    def run(self, x, steps: int, profile: dict | None = None):
        """Simulate a batch for ``steps`` steps.

        Returns ``(readout, counts)``: the mean output value over the steps, shape
        ``(B, *output_shape)``, and the spike counts of every neuron node. With ``profile``
        (a dict), seconds spent per node are added to it.
        """
        graph = self.graph
        x = np.ascontiguousarray(x, dtype=self.dtype)
        b = x.shape[0]
        state, counts, bufs = {}, {}, {}
        for node, p in self.layers:
            if node.op == "if":
                shape = (b,) + graph.shapes[node.name]
                state[node.name] = np.zeros(shape, self.dtype)
                if node.attrs["v_init"] == "half":
                    state[node.name] += p["theta"] / 2
                counts[node.name] = np.zeros(shape, np.int64)
        total = np.zeros((b,) + graph.shapes[graph.output], self.dtype)
        for _ in range(steps):
            values = {INPUT: x}
            for node, p in self.layers:
                t0 = time.perf_counter() if profile is not None else 0.0
                ins = [values[i] for i in node.inputs]
                op = node.op
                if op == "linear":
                    v = ins[0] @ p["w_t"]
                    v += p["bias"]
                elif op == "conv2d":
                    v = self._conv(bufs, node, p, ins[0])
                elif op == "avgpool2d":
                    v = self._avgpool(bufs, node, ins[0])
                elif op == "if":
                    v = self._if(state, node, p, ins[0], counts)
                elif op == "flatten":
                    v = ins[0].reshape(b, -1)
                elif op == "add":
                    v = sum(ins[1:], ins[0])
                elif op == "batchnorm":
                    scale = p["gamma"] / np.sqrt(p["var"] + node.attrs["eps"])
                    shp = (1, -1) + (1,) * (ins[0].ndim - 2)
                    v = ins[0] * scale.reshape(shp) + (p["beta"] - p["mean"] * scale).reshape(shp)
                else:  # identity
                    v = ins[0]
                values[node.name] = v
                if profile is not None:
                    profile[node.name] = profile.get(node.name, 0.0) + time.perf_counter() - t0
            total += values[graph.output]
        return total / steps, counts


class DenseTorch:
    """Dense per-step loop in PyTorch: ``F.linear`` / ``F.conv2d`` / ``F.avg_pool2d`` + IF.

    Parameters
    ----------
    net : SpikingNetwork
    torch : module
        The imported ``torch`` (imported by the caller, so this file loads without it).
    dtype : {"float32", "float64"}
    """

    def __init__(self, net, torch, dtype="float32"):
        if net.encoding != "analog":
            raise NotImplementedError("the dense peers implement analog encoding only")
        self.torch = torch
        self.F = torch.nn.functional
        self.graph = net.graph
        self.dtype = getattr(torch, dtype)
        self.layers = []
        for node in self.graph.nodes:
            p = {k: torch.from_numpy(np.array(v)).to(self.dtype) for k, v in node.params.items()}
            if node.op == "if":
                p["theta"] = _theta_shape(p["threshold"], self.graph.shapes[node.name])
            elif node.op not in ("linear", "conv2d", "avgpool2d", "flatten", "identity", "add",
                                 "batchnorm"):
                raise NotImplementedError(f"torch peer: op {node.op}")
            self.layers.append((node, p))

    def run(self, x, steps: int, profile: dict | None = None):
        """As :meth:`DenseNumpy.run`; returns NumPy arrays."""
        torch, F, graph = self.torch, self.F, self.graph
        with torch.inference_mode():
            xt = torch.from_numpy(np.ascontiguousarray(x)).to(self.dtype)
            b = xt.shape[0]
            state, counts = {}, {}
            for node, p in self.layers:
                if node.op == "if":
                    shape = (b,) + graph.shapes[node.name]
                    state[node.name] = torch.zeros(shape, dtype=self.dtype)
                    if node.attrs["v_init"] == "half":
                        state[node.name] += p["theta"] / 2
                    counts[node.name] = torch.zeros(shape, dtype=torch.int64)
            total = torch.zeros((b,) + graph.shapes[graph.output], dtype=self.dtype)
            for _ in range(steps):
                values = {INPUT: xt}
                for node, p in self.layers:
                    t0 = time.perf_counter() if profile is not None else 0.0
                    ins = [values[i] for i in node.inputs]
                    op, a = node.op, node.attrs
                    if op == "linear":
                        v = F.linear(ins[0], p["weight"], p["bias"])
                    elif op == "conv2d":
                        v = F.conv2d(ins[0], p["weight"], p["bias"], a["stride"], a["padding"],
                                     1, a["groups"])
                    elif op == "avgpool2d":
                        v = F.avg_pool2d(ins[0], a["kernel"], a["stride"], a["padding"],
                                         ceil_mode=False, count_include_pad=True)
                    elif op == "if":
                        u = state[node.name]
                        u += ins[0]
                        fired = u >= p["theta"]
                        v = fired * p["theta"]
                        if a["reset"] == "zero":
                            u.masked_fill_(fired, 0.0)
                        else:
                            u -= v
                        counts[node.name] += fired
                    elif op == "flatten":
                        v = ins[0].reshape(b, -1)
                    elif op == "add":
                        v = sum(ins[1:], ins[0])
                    elif op == "batchnorm":
                        v = F.batch_norm(ins[0], p["mean"], p["var"], p["gamma"], p["beta"],
                                         False, 0.0, a["eps"])
                    else:
                        v = ins[0]
                    values[node.name] = v
                    if profile is not None:
                        profile[node.name] = (profile.get(node.name, 0.0)
                                              + time.perf_counter() - t0)
                total += values[graph.output]
            return ((total / steps).numpy(),
                    {k: c.numpy() for k, c in counts.items()})


class SpikingJellyMultiStep:
    """SpikingJelly's multi-step IF network: all T steps of a layer at once, layer by layer.

    The IF layers are ``spikingjelly.activation_based.neuron.IFNode(v_threshold=θ,
    v_reset=None, step_mode="m")`` (``v_reset=None``: reset by subtraction; ``--reset zero`` is
    ``v_reset=0.0``) in eval mode, which runs SpikingJelly's TorchScript multi-step kernel over a
    ``(T, B, ...)`` tensor. The synapses are the torch functions of
    :mod:`refsnn.interop.spikingjelly` (the single-step SpikingJelly check) applied to the
    ``(T*B, ...)`` flattening, as SpikingJelly's ``SeqToANNContainer`` /
    ``functional.seq_to_ann_forward`` do. The analog input is the same sample at every step
    (expanded to ``(T, B, ...)``); SpikingJelly's spike is 1, refsnn's is ``θ``, so each IF
    layer's output is multiplied by ``θ``; the readout is the output's sum over steps / T.

    Multi-step mode holds every layer's whole ``(T, B, ...)`` sequence: memory grows with T.

    Parameters
    ----------
    net : SpikingNetwork
        An IF network (``convert_if``, one threshold per layer, analog input, ``v_init``
        zero); its dtype is the peer's.
    torch : module
        The imported ``torch``.
    """

    def __init__(self, net, torch):
        from spikingjelly.activation_based import functional, neuron

        from refsnn.interop.spikingjelly import SYNAPSES, V_RESET

        if net.method != "if" or net.encoding != "analog":
            raise NotImplementedError("SpikingJelly peer: IF networks with analog input only")
        self.torch, self.functional = torch, functional
        self.graph = net.graph
        self.fns, self.neurons, self.theta = {}, {}, {}
        for node in self.graph.nodes:
            if node.op == "if":
                theta = np.unique(node.params["threshold"])
                if theta.size != 1 or node.attrs["v_init"] != "zero":
                    raise NotImplementedError("SpikingJelly peer: one threshold per layer and "
                                              "v_init zero only")
                n = neuron.IFNode(v_threshold=float(theta[0]),
                                  v_reset=V_RESET[node.attrs["reset"]], step_mode="m")
                n.eval()
                self.neurons[node.name] = n
                self.theta[node.name] = float(theta[0])
            elif node.op in SYNAPSES:
                self.fns[node.name] = SYNAPSES[node.op](node)
            else:
                raise NotImplementedError(f"SpikingJelly peer: op {node.op}")
        # when each value can be dropped: after its last consumer (multi-step tensors are big)
        self.last_use = {}
        for i, node in enumerate(self.graph.nodes):
            for src in node.inputs:
                self.last_use[src] = i

    def run(self, x, steps: int, profile: dict | None = None):
        """As :meth:`DenseNumpy.run`; returns NumPy arrays."""
        torch, graph = self.torch, self.graph
        with torch.inference_mode():
            xt = torch.from_numpy(np.ascontiguousarray(x, dtype=graph.dtype))
            b = xt.shape[0]
            values = {INPUT: xt.unsqueeze(0).expand((steps,) + tuple(xt.shape))}
            counts = {}
            for i, node in enumerate(graph.nodes):
                t0 = time.perf_counter() if profile is not None else 0.0
                ins = [values[s] for s in node.inputs]
                if node.op == "if":
                    n = self.neurons[node.name]
                    self.functional.reset_net(n)
                    spikes = n(ins[0])
                    counts[node.name] = spikes.sum(0).to(torch.int64).numpy()
                    v = spikes * self.theta[node.name]
                else:  # a stateless synapse on the (T*B, ...) flattening
                    y = self.fns[node.name](*(s.flatten(0, 1) for s in ins))
                    v = y.reshape((steps, b) + tuple(y.shape[1:]))
                values[node.name] = v
                for s in node.inputs:
                    if self.last_use[s] == i and s != graph.output:
                        del values[s]
                if profile is not None:
                    profile[node.name] = profile.get(node.name, 0.0) + time.perf_counter() - t0
            readout = values[graph.output].sum(0) / steps
            return readout.numpy(), counts


#: ANN operator -> its PyTorch function ``f(F, node, p, *inputs)`` (the ANN peer).
ANN_TORCH = {
    "linear": lambda F, n, p, x: F.linear(x, p["weight"], p["bias"]),
    "conv2d": lambda F, n, p, x: F.conv2d(x, p["weight"], p["bias"], n.attrs["stride"],
                                          n.attrs["padding"], 1, n.attrs["groups"]),
    "avgpool2d": lambda F, n, p, x: F.avg_pool2d(x, n.attrs["kernel"], n.attrs["stride"],
                                                 n.attrs["padding"], count_include_pad=True),
    "maxpool2d": lambda F, n, p, x: F.max_pool2d(x, n.attrs["kernel"], n.attrs["stride"],
                                                 n.attrs["padding"]),
    "batchnorm": lambda F, n, p, x: F.batch_norm(x, p["mean"], p["var"], p["gamma"],
                                                 p["beta"], False, 0.0, n.attrs["eps"]),
    "relu": lambda F, n, p, x: F.relu(x),
    "flatten": lambda F, n, p, x: x.flatten(1),
    "identity": lambda F, n, p, x: x,
    "add": lambda F, n, p, *xs: sum(xs[1:], xs[0]),
}


class AnnTorch:
    """The source ReLU ANN's forward pass in PyTorch, for scale (one pass, no time steps).

    Parameters
    ----------
    graph : Graph
        The ANN (before conversion).
    torch : module
    dtype : {"float32", "float64"}
    """

    def __init__(self, graph, torch, dtype="float32"):
        self.torch, self.F, self.graph = torch, torch.nn.functional, graph
        self.dtype = getattr(torch, dtype)
        self.layers = []
        for node in graph.nodes:
            if node.op not in ANN_TORCH:
                raise NotImplementedError(f"ANN peer: op {node.op}")
            p = {k: torch.from_numpy(np.array(v)).to(self.dtype) for k, v in node.params.items()}
            self.layers.append((node, p))

    def run(self, x, steps: int, profile: dict | None = None):
        """The ANN's output for a batch, shape (B, *output_shape); ``steps`` is ignored.

        Returns ``(output, {})``: an ANN has no spike counts.
        """
        torch, F = self.torch, self.F
        with torch.inference_mode():
            values = {INPUT: torch.from_numpy(np.ascontiguousarray(x)).to(self.dtype)}
            for node, p in self.layers:
                values[node.name] = ANN_TORCH[node.op](F, node, p,
                                                       *(values[i] for i in node.inputs))
            return values[self.graph.output].numpy(), {}
