"""User-facing errors: the CLI prints these as one line, without a traceback."""


class LowrankEdgeError(Exception):
    """A problem the user can fix: bad input file, bad option, missing dependency."""


class DataFormatError(LowrankEdgeError):
    """A data file is not in the format we expected (names the file and the problem)."""


class MissingDependencyError(LowrankEdgeError):
    """An optional package (TensorFlow, a runtime) is needed but not installed."""


class CompressionError(LowrankEdgeError):
    """A compression setting or model the user can fix (names the layer or argument)."""
