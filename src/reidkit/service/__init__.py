"""Person search as a service: an HTTP API and a web page over one person-search store, with access tokens, an
audit log and ingest jobs that run in their own processes.

The service's own state (tokens, audit log, jobs) lives in ``<db>/service.sqlite`` beside the store's
``reidkit.sqlite``, so the store stays exactly what ``reidkit ingest`` and ``reidkit search`` read and write.
Only ``reidkit.cli`` imports this package.
"""
