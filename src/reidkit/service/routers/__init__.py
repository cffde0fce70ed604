"""The API's routes, one module per area: ``meta`` (health, cameras, videos), ``search``, ``media`` (crops, frames,
tracks), ``admin`` (the audit log) and ``videos``, the write side (uploads and ingest jobs, deleting videos,
purging)."""
