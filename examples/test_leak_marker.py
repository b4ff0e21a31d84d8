"""The leak_limit marker on an ordinary test function: its body runs N times under the lab.

    pytest examples/test_leak_marker.py

Installing qasr registers the pytest plugin. Without ``scenario=``, the marker runs the test body
``iterations`` times in a child process, samples memory after each call and fails the test with the
verdict, the slopes with their 95% bounds and the report's path when RssAnon or the live heap grows
faster than ``per_iteration``. Fixtures are set up once, in that child, and shared by every call
(any scope); the body never runs in the pytest process itself. No model is needed here: this test
checks qasr's text post-processing, the kind of code a service calls on every request.
"""

from __future__ import annotations

import pytest

from qasr.text.post import postprocess


@pytest.fixture(scope="module")
def transcripts() -> list[str]:
    """Built once (in the lab's child) and reused by every iteration."""
    return [f"我的电话号码是幺三八零零一二三四{k}，二零二四年三月五日" for k in range(10)]


@pytest.mark.leak_limit(per_iteration="64 KiB", iterations=100)
def test_postprocessing_does_not_leak(transcripts: list[str]) -> None:
    for text in transcripts:
        assert postprocess(text, itn=True, opencc="s2twp").endswith("2024年3月5日")
