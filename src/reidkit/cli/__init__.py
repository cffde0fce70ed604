"""The ``reidkit`` command line."""
