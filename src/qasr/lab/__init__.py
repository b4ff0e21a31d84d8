"""The memory-leak lab: sample a process's memory, fit a per-iteration slope, and say what leaks.

``sample`` reads /proc and glibc's allocator statistics cheaply enough to run several times per
iteration; ``verdict`` turns per-iteration series into LEAK / NO_LEAK / INCONCLUSIVE with a
confidence bound and attributes the growth (live heap, allocator retention, mappings); ``units``
parses and prints byte sizes. The method is GUIDE.md §4.
"""
