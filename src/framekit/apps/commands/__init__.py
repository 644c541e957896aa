"""The subcommands of the ``framekit`` command, one module each (see :mod:`framekit.apps.cli`)."""
