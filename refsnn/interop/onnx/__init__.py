"""Read ONNX models into refsnn (needs the ``onnx`` package; optional extra ``onnx``).

The file is parsed with ``onnx`` only (protobuf; no runtime): initializers, ``Constant`` nodes
and shape arithmetic are folded to constants, the patterns exporters emit (GELU through
``Erf`` or ``Tanh``, the decomposed LayerNorm, SiLU as ``x * Sigmoid(x)``, QCFS, ``MatMul`` +
``Add`` bias) are recognised, and every remaining node is mapped to one refsnn operator or
refused with a one-line :class:`~refsnn.errors.ModelFormatError` naming the file, the ONNX node,
its ``op_type`` and why. The result goes through the one validator,
:func:`refsnn.model.graph.make_graph`.

ONNX shapes include the batch axis (axis 0, fixed or symbolic); refsnn's are per sample.
"""

from refsnn.interop.onnx.reader import import_onnx, load_onnx

__all__ = ["load_onnx", "import_onnx"]
