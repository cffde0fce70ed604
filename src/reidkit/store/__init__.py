"""The person-search store: one folder holding SQLite metadata, JPEG crops and two vector indexes (crops, tracks).

It imports nothing of reidkit but ``errors`` and ``registry``, so reading a store loads no model, video or ingest
code, and no index library until a store's backend is used:

``layout``         the folder's file and folder names        ``paths``          stored paths kept inside the store
``schema``         the SQLite tables and connection           ``rows``           typed rows and the SQL that reads them
``filters``        camera / time filters of a search          ``reader``         ``StoreReader``: reading an open store
``writer``         ``Store``: a reader that can also write    ``index_sync``     indexes kept in step with SQLite
``vector_index``   the index interface and ``VECTOR_INDEXES``  ``index_plan``     exact or approximate, by gallery size
``backend_choice`` the backend a store records                ``backend_move``   moving a store to another backend
``faiss_index``    the FAISS backend                          ``milvus_index``   the Milvus backend

Search, ingest, people and reindex over a store live in ``reidkit.search``; see docs/search.md.
"""
