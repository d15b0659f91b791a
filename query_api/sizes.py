"""The deep size of Python objects in memory: what a projection's structures cost (`DatasetProjection.memory`)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def deep_size(root: Any, seen: set[int] | None = None) -> int:
    """Bytes taken by `root` and every object it reaches through containers, `__dict__` and `__slots__`, each
    counted once (also across calls sharing `seen`): a numpy array by its buffer (a view's base counted once),
    interned and small cached objects as often as they are first reached. Iterative, so a deep structure does
    not hit the recursion limit."""
    seen = set() if seen is None else seen
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            if obj.base is None:
                total += sys.getsizeof(obj)
            else:
                total += sys.getsizeof(obj) - (obj.nbytes if obj.flags.owndata else 0)
                stack.append(obj.base)
            continue
        total += sys.getsizeof(obj)
        if isinstance(obj, str | bytes | int | float | bool | type(None)):
            continue
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        else:
            if hasattr(obj, "__dict__"):
                stack.append(obj.__dict__)
            for name in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, name):
                    stack.append(getattr(obj, name))
    return total
