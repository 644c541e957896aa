"""The applications built on the library: the ``framekit`` command and what it runs.

Design notes
------------
They stand above the library and use only its public API; the library never
imports them (``tests/test_layout.py`` holds that):

* :mod:`.cli` and :mod:`.commands`: the ``framekit`` command and its
  subcommands;
* :mod:`.transfer`: the file-transfer protocol of ``send-file``/``recv-file``;
* :mod:`.benchmarks`: the benchmark framework behind ``framekit bench`` and
  ``bench/``.
"""
