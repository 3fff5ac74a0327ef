"""A server's start-up objects, kept out of Python's full garbage collections.

A server imports its libraries, and the rasa server loads its model, once: those
objects live as long as the process. CPython's full (generation 2) collection walks
every object it tracks, and the event loop stops meanwhile. Measured with
``gc.callbacks`` in ``make cluster``'s processes under LINE bursts: a full collection
in a rasa server (about 770,000 objects with the model loaded) took 0.8 s while it
served turns, and each of LINE's two intake processes (38,000 objects) had one of
39-71 ms in the middle of the first burst it acknowledged (docs/benchmarks.md,
"Full collections").

:func:`freeze_startup_objects` moves every object alive when start-up is done into
the collector's permanent generation (:func:`gc.freeze`), so that later collections
walk only what the server made since. Reference counting still frees frozen objects;
only a reference cycle among them would stay, so it is called once, after start-up,
and after a collection that frees the start-up's own garbage.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def freeze_startup_objects() -> int:
    """Collect the start-up's garbage, then freeze what is left; how many objects that is."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("Start-up objects kept out of full garbage collections: %d", frozen)
    return frozen
