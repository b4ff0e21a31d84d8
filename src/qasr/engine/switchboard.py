"""Which turn a model's text belongs to when several models share a process: the one running now.

Why (upstream chatllm.cpp 4a4310e, measured with ``tests/two_models_repro.py``): every model
object's text passes through one process-wide chunk interceptor, ``static ThoughtChunkInterceptor
thought_interceptor`` (src/main.cpp:28). Each ``chatllm_start`` links it to its own streamer
(``set_interceptor``, src/main.cpp:1777, whose ``intercept()`` at src/chat.cpp:487 overwrites the
interceptor's ``next``), so once a second model is started, the chunks of *every* model arrive at the
print callback of the model started last, with that model's user data; the earlier model's own
callback gets one ``f_end`` and no text. No callback and no user data can tell whose chunks they are.
The time can: turns run one at a time in the process, and every model's sink hands the chunks and
ends it receives to the turn running now. Cost: two models in one process never run turns at the
same time (upstream could not keep their text apart if they did).
"""

from __future__ import annotations

import threading
from typing import Any

from qasr.errors import EngineError


class Switchboard:
    """The one engine turn running in this process, and the lock that keeps it to one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None
        #: What the callbacks of any model write to now (a `qasr.engine.model._Turn`), or None.
        self.turn: Any = None

    def enter(self, turn: Any) -> None:
        """Wait until no other turn runs, then make ``turn`` the one that receives text.

        A second turn started from the thread that is still consuming the first would wait for itself
        forever: refuse it instead.
        """
        if self._owner == threading.get_ident():
            raise EngineError(
                "another model's turn is still running in this thread; finish or close that iterator first "
                "(upstream chatllm.cpp cannot keep two models' text apart, so turns run one at a time per process)"
            )
        self._lock.acquire()
        self._owner = threading.get_ident()
        self.turn = turn

    def leave(self) -> None:
        self.turn = None
        self._owner = None
        self._lock.release()


#: The process's switchboard: one engine per process (`qasr.engine.library.load_library`), so one board.
BOARD = Switchboard()
