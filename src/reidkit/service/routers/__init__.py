"""The API's routes, one module per area: ``meta`` (health, cameras, videos), ``search``, ``media`` (crops, frames,
tracks) and ``admin`` (the audit log). The write side (uploads and ingest jobs, deleting videos, purging) adds its
own router in ``reidkit.service.app.create_app``."""
