"""A griffe extension for the documentation site: what mkdocstrings shows of interop's API.

Four things the source says in a way a static reader would render badly:

* Sphinx roles in docstrings (``:func:`interop.to_numpy```), which mkdocstrings
  would show literally, become optional cross-references: a link where the object is
  on the API page, plain code where it is not (a private module, NumPy), never a
  broken link.
* ``Example:`` sections, which Google style allows besides ``Examples:`` but griffe
  reads as a plain admonition (so ``>>>`` lines became block quotes), are read as
  ``Examples:``, whose doctest lines are shown as code.
* ``#:`` comments above class and module attributes (Sphinx's form, which griffe does
  not read) become the attributes' docstrings, so ``Backend.name``, ``module`` and
  the other class attributes a backend sets are documented on the site.
* ``**options: Unpack[Keywords]``: the option keywords every conversion function
  takes, written once in ``interop._options.Keywords`` and spelled out at run time
  by ``interop._options.signature``. The same is done here, so the signatures on the
  site match ``help()`` and the ``Args:`` sections match the signatures.

Loaded by mkdocs.yml (``extensions:`` of the python handler).
"""

from __future__ import annotations

import ast
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")
EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
KEYWORDS = "interop._options.Keywords"
KEYWORDS_ORDER = "interop._options.KEYWORDS"


def _identifier(obj: griffe.Object, target: str) -> str:
    """The full dotted name ``target`` stands for in the docstring of ``obj``."""
    if target.startswith("."):  # relative to the module: `.source`
        return f"{obj.module.path}{target}"
    if "." in target:
        return target
    # A bare name: what it means where the docstring is (a member of its class, a
    # name of its module), else a built-in or a top-level module, as written.
    try:
        return obj.resolve(target)
    except griffe.NameResolutionError:
        return target


def _link(obj: griffe.Object, match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    title = target.rsplit(".", 1)[-1] if short else target.lstrip(".")
    return (
        f'<autoref identifier="{_identifier(obj, target)}" optional><code>{title}</code></autoref>'
    )


def _objects(obj: griffe.Object) -> Any:
    """``obj`` and every object defined inside it (aliases left out)."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)  # type: ignore[arg-type]


def _comment_docstring(attribute: griffe.Object) -> None:
    """Give ``attribute`` the ``#:`` comment lines right above it as its docstring."""
    if not attribute.lineno or attribute.filepath not in attribute.lines_collection:
        return
    lines = attribute.lines_collection[attribute.filepath]
    comment: list[str] = []
    index = attribute.lineno - 2  # type: ignore[operator]  # the line above, 0-based
    while index >= 0 and lines[index].strip().startswith("#:"):
        comment.insert(0, lines[index].strip()[2:].strip())
        index -= 1
    if comment:
        attribute.docstring = griffe.Docstring(
            "\n".join(comment), lineno=index + 2, parent=attribute
        )


class InteropDocs(griffe.Extension):
    """Roles as links, ``Example:`` as ``Examples:``, ``#:`` comments, ``Unpack[Keywords]``."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.path != "interop":
            return
        keywords = pkg.modules_collection[KEYWORDS]
        # Its own fields and those of the TypedDict it extends, in the order of the
        # module's KEYWORDS tuple (the order of the run-time signatures).
        fields = {
            name: attribute
            for cls in (*keywords.resolved_bases, keywords)
            for name, attribute in cls.members.items()
            if attribute.is_attribute
        }
        order = ast.literal_eval(str(pkg.modules_collection[KEYWORDS_ORDER].value))
        spelled = [
            griffe.Parameter(
                name,
                annotation=fields[name].annotation,
                kind=griffe.ParameterKind.keyword_only,
                default="None",
            )
            for name in order
        ]
        for obj in _objects(pkg):
            if obj.is_attribute and obj.docstring is None:
                _comment_docstring(obj)
            docstring = obj.docstring
            if docstring is not None:
                value = EXAMPLE.sub(r"\1Examples:", docstring.value)
                docstring.value = ROLE.sub(lambda m, o=obj: _link(o, m), value)
            if obj.is_function:
                self._spell_out(obj, spelled)  # type: ignore[arg-type]

    @staticmethod
    def _spell_out(function: griffe.Function, spelled: list[griffe.Parameter]) -> None:
        params = list(function.parameters)
        last = params[-1] if params else None
        if (
            last is None
            or last.kind is not griffe.ParameterKind.var_keyword
            or "Unpack[Keywords]" not in str(last.annotation)
        ):
            return
        function.parameters = griffe.Parameters(*params[:-1], *spelled)
