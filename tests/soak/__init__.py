"""Attacks on framekit's servers, each run in a subprocess whose RSS, fds and threads are read."""
