"""What every watcher runs on its committed tracks: the watch list's alerts first (their latency is the product's),
then the people linked online. One place, so ``reidkit watch`` and the service's live worker cannot differ."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reidkit.live.alerts import AlertListener
from reidkit.live.events import TrackListener
from reidkit.live.online_people import OnlinePeople


@contextmanager
def watch_listeners(store_root: Path, model_id: str | None = None) -> Iterator[list[TrackListener]]:
    """The alert listener (with the store's webhooks) and the online people linker, closed on exit."""
    alerts = AlertListener.with_webhooks(store_root, model_id)
    people = OnlinePeople(store_root)
    try:
        yield [alerts, people]
    finally:
        alerts.close()
        people.close()
