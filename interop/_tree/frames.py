"""The kinds of container in a tree, and the frames the walks keep for them.

Shared by :mod:`interop._tree.containers` (which type is which kind, and the frame
that opens a container), :mod:`interop._tree.rebuild` (the new container a frame
gives) and :mod:`interop._tree.paths` (the path of a frame's child), which import
it and not each other.
"""

from __future__ import annotations

from typing import Any

_OTHER = 0  # a leaf returned as it is
_ROOT = 1  # the frame that holds the whole tree
_DICT = 2  # exactly dict
_LIST = 3  # exactly list
_TUPLE = 4  # exactly tuple
_NAMEDTUPLE = 5
_MAPPING = 6  # other mappings, dict subclasses included
_SEQUENCE = 7  # list and tuple subclasses that are not namedtuples
_DATACLASS = 8
_NODE = 9  # a container registered with a framework (a JAX pytree node)

# No value: the key of a frame before its first child, an attribute that is not set.
_MISSING: Any = object()

# A frame is one container being walked, as a list (cheaper to make than an object):
_KIND, _SRC, _ITEMS, _OUT, _KEY, _DELAYED, _NODE_OF = range(7)
# [kind, the container, iterator of (key, child), the converted children (a dict for
#  mappings and dataclasses, a list otherwise), the key of the child being walked
#  below it, whether a child still waits for its device-to-host copy, and for a
#  framework's registered container its Node]
Frame = list[Any]
