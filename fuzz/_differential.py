"""A small generic driver for differential fuzzing: the same operations on twins.

Design notes
------------
A target (``fuzz_<codec>.py``) turns the fuzzer's bytes into a configuration
and a sequence of operations with :class:`Source`, and runs each operation on
every twin through :class:`Twins`, which records what each one did (the value
returned, or the exception raised with its message and ``.frames``) and fails
with :class:`Mismatch` as soon as they differ.  The same target runs under
atheris (``python fuzz/fuzz_length_prefixed.py``, for hours) and under
hypothesis in the test suite (``Source`` is plain Python over a ``bytes``).

The views ``get_buffer`` hands out are per twin: :class:`Twins` keeps them,
writes the same bytes into each, and can write into old ones (stale views)
to check that the twins refuse, or accept, alike.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

__all__ = ["Mismatch", "Source", "Twins", "outcome"]


class Mismatch(AssertionError):
    """The twins did different things."""


class Source:
    """Draws choices from a byte string (like atheris' FuzzedDataProvider);
    once it is used up every draw is the smallest choice."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def int(self, lo: int, hi: int) -> int:
        """An int in ``[lo, hi]``."""
        span = hi - lo
        if span <= 0:
            return lo
        nbytes = (span.bit_length() + 7) // 8
        chunk = self._data[self._pos : self._pos + nbytes]
        self._pos += len(chunk)
        return lo + int.from_bytes(chunk, "little") % (span + 1)

    def bool(self) -> bool:
        return self.int(0, 1) == 1

    def pick(self, items: Sequence[Any]) -> Any:
        return items[self.int(0, len(items) - 1)]

    def bytes(self, max_size: int) -> bytes:
        n = self.int(0, max_size)
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out


Outcome = Tuple[Any, ...]


def _plain(value: Any) -> Any:
    if isinstance(value, memoryview):
        return ("view", value.nbytes, value.readonly)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def outcome(call: Callable[[], Any]) -> Tuple[Outcome, Any]:
    """Run ``call``; return what it did, comparable across twins, and its value."""
    try:
        value = call()
    except Exception as exc:
        frames = getattr(exc, "frames", None)
        return ("raise", type(exc).__name__, str(exc), _plain(frames)), None
    return ("ok", _plain(value)), value


class Twins:
    """The same object built by each twin; every call goes to all of them."""

    def __init__(self, objects: Sequence[Any], names: Sequence[str]) -> None:
        self.objects = list(objects)
        self.names = list(names)
        self.log: List[str] = []
        self.views: List[List[Optional[memoryview]]] = [[] for _ in objects]

    def _agree(self, what: str, outs: List[Outcome]) -> Outcome:
        self.log.append(f"{what} -> {outs[0]!r}"[:300])
        for name, out in zip(self.names[1:], outs[1:]):
            if out != outs[0]:
                history = "\n  ".join(self.log[-30:])
                raise Mismatch(
                    f"{what}: {self.names[0]} did {outs[0]!r}\n  but {name} did {out!r}\n"
                    f"last operations:\n  {history}"
                )
        return outs[0]

    def call(self, method: str, *args: Any, **kwargs: Any) -> Outcome:
        """Call ``method`` on every twin; return the common outcome."""
        outs = []
        for i, obj in enumerate(self.objects):
            out, value = outcome(lambda obj=obj: getattr(obj, method)(*args, **kwargs))
            outs.append(out)
            if isinstance(value, memoryview):
                self.views[i].append(value)
        return self._agree(f"{method}{args!r}{kwargs or ''}", outs)

    def get(self, attribute: str) -> Outcome:
        outs = [outcome(lambda o=o: getattr(o, attribute))[0] for o in self.objects]
        return self._agree(attribute, outs)

    def set(self, attribute: str, value: Any) -> Outcome:
        outs = [outcome(lambda o=o: setattr(o, attribute, value))[0] for o in self.objects]
        return self._agree(f"{attribute} = {value!r}", outs)

    def write(self, age: int, offset: int, data: bytes) -> Outcome:
        """Write ``data`` at ``offset`` into the view handed out ``age`` views ago
        (0: the newest), in every twin."""
        outs = []
        for views in self.views:
            if age >= len(views):
                outs.append(("no view",))
                continue
            view = views[-1 - age]

            def put(view: Any = view) -> None:
                n = max(0, min(len(data), view.nbytes - offset))
                view[offset : offset + n] = data[:n]

            outs.append(outcome(put)[0])
        return self._agree(f"write(age={age}, offset={offset}, {len(data)} bytes)", outs)

    def forget_views(self, keep: int) -> None:
        for views in self.views:
            del views[: max(0, len(views) - keep)]
