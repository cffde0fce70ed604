"""Live cameras: continuous ingest of streams into a store, a watch list with alerts, people linked online, zones.

The stage above person search: a camera's stream is ingested as recordings are (``reidkit.search``), in short
committed segments, and everything that reacts to a live track (alerts, online people, zones) listens to the
segments' committed tracks through ``events.TrackListener`` rather than reading the ingest's internals. Live state
that the service and the CLI both write while a watcher holds the store's writer lock (cameras, gaps, the watch list,
alerts, zones) lives in the store folder's ``live.sqlite`` (``live_db``), beside the store's own database.

Submodules are imported where used, so that importing one does not load the others.
"""
