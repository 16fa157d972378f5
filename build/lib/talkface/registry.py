"""A name -> factory registry shared by visual backends and models."""
from __future__ import annotations


class Registry:
    """Name -> factory. Refuses a name registered twice (as pyiqa's registry does) instead of
    silently replacing the first, and lists what it holds."""

    def __init__(self, kind: str) -> None:
        self.kind, self._items = kind, {}

    def register(self, name: str):
        def wrap(factory):
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice "
                                 f"({self._items[name].__module__} and {factory.__module__})")
            self._items[name] = factory
            return factory
        return wrap

    def get(self, name: str):
        return self._items.get(name)

    def names(self) -> list[str]:
        return sorted(self._items)
