"""Names of the arrays in an output file: valid in its format, unique, and never silently changed.

A key comes from the input file and may be anything. Every format stores names
as UTF-8, which a lone surrogate (what ``os.fsdecode`` makes of a file name that
is not UTF-8, or a ``\\udcff`` escape in a JSON header) cannot be written in; a
``.safetensors`` header keeps ``__metadata__`` for itself. A ``.npz`` archive
asks more: ``../../evil`` or ``/etc/x`` would name a path outside the directory
that ``unzip`` extracts to, a NUL byte would make ``zipfile`` cut the name short,
a backslash is a separator on Windows, and a control character can rewrite the
user's terminal. Such a key is written under an escaped name (``%2E``-style, the
bytes of the character in UTF-8, a surrogate's as ``surrogatepass`` writes them):

- lone surrogates are escaped wherever they appear, in every format
  (:func:`text_names`), and so is the first character of a reserved name;
- in a ``.npz`` archive (:func:`member_names`) so are control characters (NUL
  included) and backslashes, and a key that, as a path, is absolute or has an
  empty, ``.`` or ``..`` directory part has every ``/`` escaped, so that it
  names one file at the archive's root;
- a name that another key already has gets a ``~N`` suffix.

Every renamed key is reported; nothing is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

__all__ = ["member_names", "text_names"]

_UNSAFE = re.compile("[\x00-\x1f\x7f\\\\\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SUFFIX = ".npy"


def _escape(char: str) -> str:
    return "".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))


def _member(key: str) -> str:
    name = _UNSAFE.sub(lambda m: _escape(m.group()), key)
    # The last part is a file name ending in .npy, never "" or ".." itself.
    directories = name.split("/")[:-1]
    if any(part in ("", ".", "..") for part in directories):
        name = name.replace("/", _escape("/"))
    return name


def _text(key: str, reserved: Collection[str]) -> str:
    name = _SURROGATE.sub(lambda m: _escape(m.group()), key)
    if name in reserved:
        name = _escape(name[0]) + name[1:]
    return name


def _unique(
    keys: Sequence[str], wanted: Sequence[str], suffix: str
) -> tuple[list[str], list[tuple[str, str]]]:
    """One name per key (``wanted``, made unique, plus ``suffix``), and the keys renamed."""
    # Names kept as they are come first, so that an escaped name never takes the
    # name of a key that needed no change.
    taken = {name for key, name in zip(keys, wanted, strict=True) if name == key}
    names: list[str] = []
    renamed: list[tuple[str, str]] = []
    counters: dict[str, int] = {}
    for key, name in zip(keys, wanted, strict=True):
        if name != key:
            base, n = name, counters.get(name, 0)
            while name in taken:
                n += 1
                name = f"{base}~{n}"
            counters[base] = n
            taken.add(name)
            renamed.append((key, name))
        names.append(name + suffix)
    return names, renamed


def member_names(keys: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The archive member names for ``keys`` (``.npy`` added), and the keys renamed on the way.

    Returns:
        One member name per key, in order, all distinct; and ``(key, new key)``
        for every key that is not written under its own name.

    Example:
        >>> names, renamed = member_names(["w", "../../evil", "a\\x00b"])
        >>> names
        ['w.npy', '..%2F..%2Fevil.npy', 'a%00b.npy']
        >>> renamed
        [('../../evil', '..%2F..%2Fevil'), ('a\\x00b', 'a%00b')]
    """
    return _unique(keys, [_member(key) for key in keys], _SUFFIX)


def text_names(
    keys: Sequence[str], reserved: Collection[str] = ()
) -> tuple[list[str], list[tuple[str, str]]]:
    """The names for ``keys`` in a format that stores names as UTF-8, and the keys renamed.

    Args:
        keys: The keys, all distinct.
        reserved: Names the format keeps for itself (a ``.safetensors`` header's
            ``__metadata__``).

    Returns:
        One name per key, in order, all distinct and encodable in UTF-8; and
        ``(key, new key)`` for every key that is not written under its own name.

    Example:
        >>> names, renamed = text_names(["w", "w\\udcff", "__metadata__"], {"__metadata__"})
        >>> names
        ['w', 'w%ED%B3%BF', '%5F_metadata__']
        >>> renamed
        [('w\\udcff', 'w%ED%B3%BF'), ('__metadata__', '%5F_metadata__')]
    """
    return _unique(keys, [_text(key, reserved) for key in keys], "")
