"""A leak regression test for your CI, with qasr's pytest plugin (installed with qasr).

    QASR_MODEL=models/qwen3-asr-0.6b-q4_0.bin QASR_LEAK_AUDIO=samples/en-hello.wav \
        QASR_CHATLLM_LIB=/opt/chatllm/bindings/libchatllm.so pytest examples/test_leak_check.py

The marker runs the scenario in a child process through the lab (100 iterations of transcribe then
restart()), and fails the test when RssAnon or the live heap grows faster than the limit, with the
verdict and the path of the report. ``leak_result`` carries the whole summary.
"""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.skipif(not (os.environ.get("QASR_MODEL") and os.environ.get("QASR_LEAK_AUDIO")),
                                reason="set QASR_MODEL and QASR_LEAK_AUDIO (and QASR_CHATLLM_LIB)")  # fmt: skip


@pytest.mark.leak_limit(scenario="restart", per_iteration="64 KiB", iterations=100)
def test_restart_does_not_leak(leak_result) -> None:  # type: ignore[no-untyped-def]
    summary = leak_result.summary
    assert summary["status"] == "completed"
    assert summary["verdicts"]["rss_anon"]["verdict"] in ("NO_LEAK", "INCONCLUSIVE")
