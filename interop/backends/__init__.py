"""One module per framework, and one for the generic array protocols.

Each module defines a :class:`interop.Backend` subclass. Importing these modules
imports no framework: a backend imports its framework in ``load()``, which runs only
once the framework is already in ``sys.modules``.
"""

__all__: list[str] = []
