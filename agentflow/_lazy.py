"""Names a package serves on first use (PEP 562), so that importing it stays light.

The package keeps a table of its lazy names and the modules that define them, and
imports the same names under ``TYPE_CHECKING`` so that type checkers see real types
(pydantic's ``__init__`` does the same).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_loader"]


def lazy_loader(package: str, names: Mapping[str, str], namespace: dict[str, Any]
                ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package with lazy names.

    Args:
        package: the package's name, for the error message.
        names: each lazy name and the module that defines it.
        namespace: the package's ``globals()``; a name is stored there once loaded.

    Example:
        __getattr__, __dir__ = lazy_loader(__name__, {"AgentFlow": "agentflow.plans"},
                                           globals())
    """
    def __getattr__(name: str) -> object:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
