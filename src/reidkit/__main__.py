"""``python -m reidkit`` runs the ``reidkit`` command, so that launchers such as ``torchrun -m reidkit`` can start it."""

from reidkit.cli.main import main

main()
