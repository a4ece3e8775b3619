"""The embedder model cards and their watchlist stores, loaded once and shared by the subject and deployment
services.

Why shared: subjects are enrolled into, and deployments are sized against, the same per-model collections;
one holder means one card read per model and one Milvus connection for every store of the process. Cards
load on first use, so a process that never touches a watchlist never reads a model file.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from lfr.core.config import Settings
from lfr.core.milvus import MilvusConnection
from lfr.watchlist.errors import GovernanceError
from lfr.watchlist.store import WatchlistStore

if TYPE_CHECKING:
    from lfr.vision.cards import ModelCard


class CardStores:
    """Embedder cards by name (default: settings.models.embedder) and one WatchlistStore per card."""

    def __init__(
        self,
        settings: Settings,
        *,
        card: ModelCard | None = None,
        store: WatchlistStore | None = None,
        milvus: MilvusConnection | None = None,
    ) -> None:
        """``milvus``: a connection shared beyond the watchlist (its owner closes it); without one, the
        stores share a connection of their own that :meth:`aclose` closes."""
        self.settings = settings
        self.milvus = milvus or MilvusConnection(settings)
        self._owns_connection = milvus is None
        self._cards: dict[str, ModelCard] = {}
        self._stores: dict[str, WatchlistStore] = {}
        if card is not None:
            self._cards[card.name] = card
        if store is not None:
            self._stores[store.card.name] = store

    def card_for(self, name: str | None = None) -> ModelCard:
        """The embedder card (default: settings.models.embedder); CardError says how to build it if absent."""
        model = name or self.settings.models.embedder
        if model not in self._cards:
            from lfr.vision.cards import find_card

            card = find_card(self.settings.models_dir, model)
            if card.kind != "embedder":
                raise GovernanceError(f"model {model} is a {card.kind}, not an embedder")
            self._cards[model] = card
        return self._cards[model]

    @property
    def card(self) -> ModelCard:
        return self.card_for(None)

    def store_for(self, name: str | None = None) -> WatchlistStore:
        card = self.card_for(name)
        if card.name not in self._stores:
            self._stores[card.name] = WatchlistStore(self.settings, card, milvus=self.milvus)
        return self._stores[card.name]

    @property
    def store(self) -> WatchlistStore:
        return self.store_for(None)

    async def aclose(self) -> None:
        for store in self._stores.values():
            await asyncio.to_thread(store.close)
        self._stores.clear()
        if self._owns_connection:
            await asyncio.to_thread(self.milvus.close)
