"""The command line's error class, and how it quotes text it does not control.

Messages of other libraries and names taken from input files reach the terminal
through :func:`quote` and :func:`printable`: a hostile file must not be able to
send escape sequences to the user's terminal or break an error into several lines.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from interop import InteropError

__all__ = ["ConvertError", "printable", "quote", "shown", "untrusted"]

# ANSI/VT100 escape sequences: CSI (colours, cursor moves), OSC (titles, links,
# ended by BEL or ESC \), and the two-character escapes.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# C0 and C1 controls, lone surrogates (unprintable, and unencodable in UTF-8) and
# the bidirectional overrides that can make a name read as another.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")
# The end of a sentence: a full stop, question or exclamation mark before a space
# or the end (so "torch.nn.Linear" or "2.6" do not end one).
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
#: The most characters :func:`quote` keeps of another library's message.
QUOTE_LIMIT = 300


class ConvertError(InteropError, ValueError):
    """A conversion that cannot go ahead; the destination is left as it was."""


def printable(text: str) -> str:
    """``text`` with control characters escaped as Python writes them, on one line.

    Example:
        >>> printable("a\\nb\\x1b[31m")
        'a\\\\nb\\\\x1b[31m'
    """
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


def shown(path: object) -> str:
    """A file name as error messages show it: quoted, with control characters escaped.

    ``repr`` escapes every character that ``str.isprintable`` rejects: control
    characters, lone surrogates, bidirectional overrides.

    Example:
        >>> print(shown("a\\x1b[31m.npz"))
        'a\\x1b[31m.npz'
    """
    return repr(str(path))


def quote(exc: BaseException) -> str:
    """The first sentence of ``exc``'s message, clean of escape codes, on one line.

    A framework's message may carry terminal colours and go on over many lines;
    an error of the command line quotes only its first, complete sentence (at
    most :data:`QUOTE_LIMIT` characters), or the exception's type name when the
    message is empty.

    Example:
        >>> quote(RuntimeError("Load \\x1b[1mfailed\\x1b[0m. This file can\\n still be read."))
        'Load failed.'
    """
    text = " ".join(_UNPRINTABLE.sub(" ", _ANSI.sub("", str(exc))).split())
    if not text:
        return type(exc).__name__
    end = _SENTENCE_END.search(text)
    sentence = text[: end.end()] if end else text
    if len(sentence) > QUOTE_LIMIT:
        sentence = sentence[: QUOTE_LIMIT - 3].rstrip() + "..."
    return sentence


@contextlib.contextmanager
def untrusted(what: str, hint: str | None = None) -> Iterator[None]:
    """Translate a third-party parser's failure on untrusted bytes into :class:`ConvertError`.

    The parsers the command line feeds with input files (``torch.load``,
    ``zipfile``, ``numpy.lib.format``, ``json``) document no complete list of what
    they raise on a malformed or hostile file: a damaged header can surface as
    ``KeyError``, ``struct.error``, ``EOFError`` or ``zlib.error``. So inside this
    block every ``Exception`` is taken for "this file cannot be read" and reported
    as ``what`` with the parser's first sentence, and ``hint`` if given, its
    cause attached. ``ConvertError`` passes through; ``KeyboardInterrupt`` and
    other ``BaseException`` are never caught.
    """
    try:
        yield
    except ConvertError:
        raise
    except Exception as exc:
        advice = f". hint: {hint}" if hint else ""
        raise ConvertError(f"{what} ({type(exc).__name__}: {quote(exc)}){advice}") from exc
