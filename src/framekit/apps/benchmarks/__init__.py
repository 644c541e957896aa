"""Benchmarks that tell the truth: framekit against its pure-Python backend, the usual
alternatives, and the floors, side by side in one run.

Design notes
------------
This package ships with framekit so that ``framekit bench`` runs from a plain
install, without pytest.  The pytest-benchmark suites in ``bench/`` import the
same comparisons, so both front-ends measure the same code on the same bytes.

Modules, in the order data flows:

* :mod:`.workloads`: payloads, wire streams, feeds, and the expected output;
* :mod:`.codec_contestants`, :mod:`.peers`, :mod:`.floors`: who decodes and
  encodes (framekit's backends and other framings, the naive codec, msgpack,
  hiredis, Twisted, and the floors: what the work costs with no framing);
* :mod:`.sender`, :mod:`.receivers`: end to end over loopback sockets, a
  sender process blasting frames at each receiver;
* :mod:`.catalogue`: every comparison, and the profiles (``all``,
  ``default``, ``quick``);
* :mod:`.harness`: check every contestant's output, then time them (median of
  repeats, rotated order, garbage collector off);
* :mod:`.targets`, :mod:`.report`: the speed targets (ratios between rows that
  framekit promises, checked by ``--check``), the table, JSON and chart.

Nothing is imported here: ``python -m framekit.apps.benchmarks.sender`` (the
sender process) must start without loading the rest.
"""
