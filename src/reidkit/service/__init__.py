"""Person search as an HTTP service: FastAPI routes over a store, bearer tokens with roles, an audit log, limits.

``create_app(db, settings)`` builds the app; ``reidkit serve`` runs it with uvicorn. The layer sits at the top beside
``demos`` (only ``cli`` imports it). See docs/service.md.
"""
