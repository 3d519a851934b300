"""Optional extras that need packages beyond the core's (e.g. torch for training).

Nothing in the core imports this package; import its modules explicitly
(``from refsnn.extras.torch_qcfs import QCFS``) after ``pip install -e '.[train]'``.
"""
