"""Include/exclude layers by name pattern (fnmatch globs, case-sensitive).

A pattern matches a layer if it matches its full path (`block/conv` inside a nested model
named `block`) or its own name (`conv`). With no include patterns every layer is included;
a layer matching any exclude pattern is excluded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from lowrank_edge.errors import CompressionError


def check_patterns(patterns: Sequence[str], argument: str) -> tuple[str, ...]:
    """Validate a pattern list (a bare string is a mistake: it would be read char by char)."""
    if isinstance(patterns, str) or not all(isinstance(p, str) and p for p in patterns):
        raise CompressionError(
            f"{argument} must be a list of non-empty name patterns, got {patterns!r}"
        )
    return tuple(patterns)


def matches(path: str, pattern: str) -> bool:
    """True if `pattern` matches the layer path or the layer's own name."""
    return fnmatchcase(path, pattern) or fnmatchcase(path.rsplit("/", 1)[-1], pattern)


@dataclass(frozen=True)
class Selection:
    """Which layer paths are excluded, and which patterns matched no layer at all."""

    excluded: frozenset[str]
    unmatched_include: tuple[str, ...]
    unmatched_exclude: tuple[str, ...]


def select_layers(
    paths: Sequence[str], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> Selection:
    """Apply include/exclude patterns to layer paths."""
    excluded = {
        path
        for path in paths
        if (include and not any(matches(path, p) for p in include))
        or any(matches(path, p) for p in exclude)
    }
    return Selection(
        excluded=frozenset(excluded),
        unmatched_include=tuple(p for p in include if not any(matches(x, p) for x in paths)),
        unmatched_exclude=tuple(p for p in exclude if not any(matches(x, p) for x in paths)),
    )
