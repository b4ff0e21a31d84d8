"""Your own request handler under the leak lab: ``qasr lab run examples/leak_scenario.py:NAME``.

    qasr lab run examples/leak_scenario.py:Handler -m MODEL --audio clip.wav -n 100
    qasr lab run examples/leak_scenario.py:normalize -n 200 --python-heap

The lab imports this file in a child process and calls one iteration at a time, sampling memory
after each (and inside each ``lab.phase``), then judges the slope per iteration with its 95% bounds
(docs/lab.md, "Your own code"). NAME is a function (one call per iteration: ``f()``, ``f(i)`` or
``f(i, lab)``) or a class with ``iteration(i)`` and, if it wants them, ``setup()`` and
``teardown()``, created as ``Cls(lab)`` or ``Cls()``. ``lab`` carries the run's inputs: ``lab.model``,
``lab.pick(i)`` (iteration i's decoded ``--audio`` and its reference), ``lab.language``,
``lab.workdir`` and the rest. The engine comes from ``QASR_CHATLLM_LIB`` as everywhere.
"""

from __future__ import annotations

import qasr
from qasr.text.post import postprocess


class Handler:
    """A request handler as a service would write it: one model for every request, text post-processed."""

    def __init__(self, lab) -> None:  # type: ignore[no-untyped-def]
        self.lab = lab

    def setup(self) -> None:
        self.model = qasr.Model(self.lab.model, language=self.lab.language)

    def iteration(self, i: int) -> str:
        audio, _ = self.lab.pick(i)
        with self.lab.phase("transcribe"):
            result = qasr.transcribe(self.model, audio)
        with self.lab.phase("postprocess"):
            text = postprocess(result.text, itn=True, opencc="s2twp", language=result.language or "zh")
        return text  # kept as the iteration's output (and scored against --reference when given)

    # No teardown: closing a Qwen3-ASR model aborts in upstream chatllm.cpp 4a4310e (README, known
    # engine issues); the lab's child ends with os._exit, so the model simply goes with the process.


def normalize(i: int) -> None:
    """A plain function: ITN and OpenCC on a transcript that changes every call."""
    postprocess(f"我的电话号码是幺三八零零一二三四{i % 10}，二零二四年三月五日", itn=True, opencc="s2twp")
