"""The cases of the leak tools comparison (docs/lab.md): what each does to memory is known in advance.

Used by tests/test_lab_tools.py and benchmarks/bench_leak_tools.py, which copy this file next to the
test files they write (`make_tests`) and set ``QASR_LEAK_CASES_LIB`` to leak_cases.c compiled with
``build.build_leak_cases``. Each case is one call, the body of one test; ``LEAKS`` says which ones
keep memory growing call after call (a tool that fails them catches a leak; one that fails the
others raises a false alarm).
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os

MIB = 1 << 20
_lib = ctypes.CDLL(os.environ["QASR_LEAK_CASES_LIB"])
for _name in ("leak_malloc", "leak_mmap", "cache_put", "clean_call"):
    getattr(_lib, _name).argtypes = [ctypes.c_size_t]
    getattr(_lib, _name).restype = None


def c_malloc_leak() -> None:
    """A native call that mallocs 1 MiB and never frees it."""
    _lib.leak_malloc(MIB)


def c_mmap_leak() -> None:
    """A native call that maps 1 MiB and never unmaps it (outside the malloc heap)."""
    _lib.leak_mmap(MIB)


def c_bounded_cache() -> None:
    """A native cache of 8 blocks of 1 MiB: full after 8 calls, then the oldest is freed each time."""
    _lib.cache_put(MIB)


_log: list[str] = []


def py_growing_list() -> None:
    """A request log that is never trimmed: 2,000 short strings per call (about 150 KiB)."""
    start = len(_log)
    _log.extend(f"request {start + k}" for k in range(2000))


_calls = itertools.count()


@functools.lru_cache(maxsize=8)
def _decoded(key: int) -> bytes:
    return bytes(MIB)


def py_lru_cache() -> None:
    """An lru_cache of 8 entries of 1 MiB, a new key each call: it fills, then evicts."""
    _decoded(next(_calls))


def clean() -> None:
    """1 MiB in C and 1 MiB in Python per call, both released before it returns."""
    _lib.clean_call(MIB)
    bytes(MIB)


#: Case -> whether its memory keeps growing with the number of calls.
LEAKS = {
    "c_malloc_leak": True,
    "c_mmap_leak": True,
    "c_bounded_cache": False,
    "py_growing_list": True,
    "py_lru_cache": False,
    "clean": False,
}
#: The limit both tools are given: bytes per iteration (qasr) and per allocation site (pytest-memray).
LIMIT_QASR, LIMIT_MEMRAY = "64 KiB", "64 KB"


def make_tests(tool: str, iterations: int = 100) -> str:
    """A test module with one test per case, marked for ``tool`` (``qasr`` or ``memray``)."""
    if tool == "qasr":
        mark = f'@pytest.mark.leak_limit(per_iteration="{LIMIT_QASR}", iterations={iterations})'
    elif tool == "memray":
        mark = f'@pytest.mark.limit_leaks("{LIMIT_MEMRAY}")'
    else:
        raise ValueError(f"unknown tool {tool!r}")
    tests = "".join(f"\n\n{mark}\ndef test_{case}():\n    leak_cases.{case}()\n" for case in LEAKS)
    return f"import pytest\n\nimport leak_cases\n{tests}"
