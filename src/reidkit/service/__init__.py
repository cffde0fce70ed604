"""Person search as a service: an HTTP API (FastAPI) over one person-search store, with bearer tokens and roles,
an audit log, limits, and ingest jobs that run in their own processes.

``create_app(db, settings)`` builds the app; ``reidkit serve`` runs it with uvicorn. The service's own state (tokens,
audit log, jobs) lives in ``<db>/service.sqlite`` beside the store's ``reidkit.sqlite``, so the store stays exactly
what ``reidkit ingest`` and ``reidkit search`` read and write. Only ``reidkit.cli`` imports this package; see
docs/service.md.
"""
