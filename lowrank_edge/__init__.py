"""lowrank-edge: SVD low-rank compression of Keras models, proven on edge runtimes.

Importing the package is cheap and never imports TensorFlow: the TF-free parts
(`lowrank_edge.runtime`, `lowrank_edge.benchmark`) must work on a device that
has only numpy and a runtime installed.
"""

__version__ = "0.1.0"
