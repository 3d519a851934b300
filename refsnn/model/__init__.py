"""Model description: operators, the frozen graph, and the HDF5 format."""

from refsnn.model.format import load_refsnn_h5, save_model
from refsnn.model.graph import INPUT, Graph, Node, Rewrite, make_graph
from refsnn.model.ops import OPS

__all__ = ["Graph", "Node", "Rewrite", "INPUT", "OPS", "make_graph", "load_refsnn_h5", "save_model"]
