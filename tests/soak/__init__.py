"""Attacks on framekit's servers, each in a subprocess whose RSS, descriptors and threads are read."""
