"""Objects unpickled in one process are shared by content.

coffea's ``Runner`` (its default ``processor_compression``), futures and dask unpickle
a processor for every chunk. A correction set or correction that pickled as its
document would be parsed, lowered and compiled again each time (up to a second per
chunk for a large file). Instead an object pickles as the pickle of its state, kept as
bytes, and a digest of those bytes: unpickling looks the digest up among the objects
alive in this process and unpickles the bytes only when none matches. The last
``RECENT`` objects unpickled stay alive between chunks. The objects shared are
immutable for their users (their caches only grow), so sharing them is safe.
"""

from __future__ import annotations

import collections
import hashlib
import pickle
import threading
import weakref
from collections.abc import Callable
from typing import Any

RECENT = 64

_live: weakref.WeakValueDictionary[tuple[str, str], Any] = weakref.WeakValueDictionary()
_recent: collections.OrderedDict[tuple[str, str], Any] = collections.OrderedDict()
_lock = threading.Lock()


def state_of(obj: Any, state: Callable[[], Any]) -> tuple[str, bytes]:
    """(digest, pickled state) of ``obj``, computed at its first pickling and kept on it
    (``obj._pickled``); ``obj`` becomes the object its copies unpickle to here."""
    pickled = getattr(obj, "_pickled", None)
    if pickled is None:
        data = pickle.dumps(state(), protocol=pickle.HIGHEST_PROTOCOL)
        pickled = (hashlib.blake2b(data, digest_size=20).hexdigest(), data)
        obj._pickled = pickled
        with _lock:
            _live.setdefault((type(obj).__qualname__, pickled[0]), obj)
    return pickled


def unpickle(kind: str, digest: str, data: bytes, rebuild: Callable[..., Any]) -> Any:
    """The live object of this content, or ``rebuild(*pickle.loads(data))``."""
    key = (kind, digest)
    with _lock:
        found = _live.get(key)
    if found is None:
        made = rebuild(*pickle.loads(data))
        made._pickled = (digest, data)
        with _lock:
            found = _live.setdefault(key, made)
    with _lock:
        _recent[key] = found
        _recent.move_to_end(key)
        while len(_recent) > RECENT:
            _recent.popitem(last=False)
    return found
