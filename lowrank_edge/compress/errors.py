"""The error raised for bad compression input (arguments, model kind, policy output)."""

from __future__ import annotations

from lowrank_edge.errors import LowrankEdgeError


class CompressionError(LowrankEdgeError):
    """A compression setting or model the user can fix (names the layer or argument)."""
