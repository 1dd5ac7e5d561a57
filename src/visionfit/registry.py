"""Name -> factory registries (models, optimizers, schedulers, init schemes).

A registry refuses duplicate names, lists itself for --help, and suggests close
names when asked for one it does not know.
"""
import difflib
from typing import Callable, Generic, Iterator, TypeVar

from .errors import ConfigError

Factory = TypeVar("Factory", bound=Callable)


class Registry(Generic[Factory]):
    """A named collection of factories, filled with the `register` decorator."""

    def __init__(self, kind: str, error: type[Exception] = ConfigError):
        self.kind = kind
        self.error = error
        self._factories: dict[str, Factory] = {}

    def register(self, name: str | None = None) -> Callable[[Factory], Factory]:
        def decorate(factory: Factory) -> Factory:
            key = name or factory.__name__
            if key in self._factories:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._factories[key] = factory
            return factory

        return decorate

    def get(self, name: str) -> Factory:
        if name not in self._factories:
            raise self.error(self.unknown_message(name))
        return self._factories[name]

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        return f"unknown {self.kind} '{name}'.{hint} Known: {', '.join(self.names())}."

    def names(self) -> list[str]:
        return sorted(self._factories)

    def in_order(self) -> list[str]:
        """The names in the order they were registered (a module's own order)."""
        return list(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
