"""The registry behind detector and embedder plug-ins: backends register a factory by model-card ``type``.

Why one class: both kinds look a backend up the same way and must refuse a card of the other kind or of an
unknown type with the same clear message, so adding a third kind of model needs no new lookup code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from lfr.vision.cards import CardError, ModelCard

if TYPE_CHECKING:  # settings compose the plug-ins' own settings modules: no import cycle at run time
    from lfr.core.config import Settings

T = TypeVar("T")


class PluginRegistry(Generic[T]):
    def __init__(self, kind: str, article: str = "a") -> None:
        self.kind = kind
        self.article = article
        self._factories: dict[str, Callable[[ModelCard, Settings], T]] = {}

    def register(
        self, card_type: str
    ) -> Callable[[Callable[[ModelCard, Settings], T]], Callable[[ModelCard, Settings], T]]:
        def deco(factory: Callable[[ModelCard, Settings], T]) -> Callable[[ModelCard, Settings], T]:
            self._factories[card_type] = factory
            return factory

        return deco

    def types(self) -> list[str]:
        return sorted(self._factories)

    def create(self, card: ModelCard, settings: Settings) -> T:
        if card.kind != self.kind:
            raise CardError(f"card {card.name} is a {card.kind}, not {self.article} {self.kind}")
        factory = self._factories.get(card.type)
        if factory is None:
            raise CardError(
                f"card {card.name} has {self.kind} type {card.type!r}; known types: {self.types()}"
            )
        return factory(card, settings)
