"""Ray for the batch: imported only here and only when a batch runs, joined or started small.

``local`` starts Ray inside this process with this machine's cores, no dashboard and a small object
store (the pieces in flight are tens of megabytes; the engine needs the memory); an address joins a
running cluster (``ray start``; ``RAY_ADDRESS``). Actors get the driver's ``QASR_*`` variables
(engine, ffmpeg, models directory), so a node runs what the command line asked for.

`layout` chooses actors x threads so that the actors' reserved CPUs never exceed the cluster's:
ggml's threads spin while they wait, so oversubscribed cores make every call slower (measured by
the server: 2 workers x 2 threads on 2 cores served 10x slower). `check_nodes` asks every node
whether it sees OUT_DIR, the model and an input, before any work starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qasr.errors import QasrError, UsageError

#: The object store of a local instance: enough for the pieces in flight, small beside the models.
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024
#: Engine threads per actor when neither --threads nor --actors says: one actor per core was the
#: best layout measured (benchmarks/bench_batch.py, docs/batch.md: 2 x 1 beat 1 x 2 on 2 cores with
#: the tiny and the 0.6B model); it costs one loaded model per core (0.6B q4_0: ~1.3 GiB at 30 s calls).
DEFAULT_THREADS = 1


def import_ray(local: bool = False) -> Any:
    """The ray module, or a clear error saying how to install it.

    ``local``: Ray on this machine alone, reachable on loopback only. Ray otherwise replaces
    127.0.0.1 with the machine's own address (measured with Ray 2.60: its GCS and raylet then listen
    on every interface); its switch for a single-node, loopback-only Ray is this variable, read once
    when Ray is imported.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if local:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
        import ray.data  # noqa: F401 - the extra must include Ray Data, not just Ray core
    except ImportError:
        raise UsageError("qasr batch runs on Ray Data, which is not installed: pip install 'qasr[cluster]'") from None
    return ray


def worker_env() -> dict[str, str]:
    """What actors and tasks inherit from this process: qasr's own settings, one BLAS thread."""
    env = {k: v for k, v in os.environ.items() if k.startswith("QASR_")}
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def connect(cluster: str) -> Any:
    """Start a local Ray (``local``) or join the cluster at ``cluster``; the ray module."""
    import logging

    ray = import_ray(local=cluster == "local")
    common: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR, "namespace": "qasr-batch",
                              "runtime_env": {"env_vars": worker_env()}}  # fmt: skip
    try:
        if cluster == "local":
            ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES, _node_ip_address="127.0.0.1", **common)  # fmt: skip
        else:
            ray.init(address=cluster, **common)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise QasrError(f"cannot {'start Ray' if cluster == 'local' else f'join the Ray cluster at {cluster}'}: {exc}") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours is the one bar
    context.print_on_execution_start = False
    context.target_max_block_size = 1  # a block per piece row: each piece can go to any actor
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # "progress bars disabled": ours is on
    return ray


def layout(cpus: int, actors: int | None, threads: int | None) -> tuple[int, int]:
    """(actors, threads per actor) that fit ``cpus`` reserved CPUs; `UsageError` when asked for more."""
    cpus = max(1, cpus)
    if threads is None and actors is None:
        threads = min(DEFAULT_THREADS, cpus)
    if threads is None:
        threads = max(1, cpus // max(1, actors or 1))
    if threads > cpus:
        raise UsageError(f"--threads {threads} is more than the {cpus} CPU(s) of the cluster")
    room = max(1, cpus // threads)
    if actors is None:
        actors = room
    if actors > room:
        raise UsageError(f"{actors} actors x {threads} threads need {actors * threads} CPUs; the cluster has {cpus} "
                         f"(at most {room} actors of {threads} threads: more would oversubscribe the cores)")  # fmt: skip
    return actors, threads


def cluster_cpus(ray: Any) -> int:
    return int(ray.cluster_resources().get("CPU", 0))


def check_nodes(ray: Any, paths: list[str]) -> None:
    """Every alive node must see each of ``paths`` (OUT_DIR's probe file, the model, one input):
    a `UsageError` naming the node and the path otherwise."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    def missing(candidates: list[str]) -> list[str]:
        return [p for p in candidates if not Path(p).exists()]

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    calls = {n["NodeManagerAddress"] + " " + n["NodeID"][:8]:
             missing.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(paths)
             for n in nodes}  # fmt: skip
    for node, ref in calls.items():
        absent = ray.get(ref, timeout=120)
        if absent:
            raise UsageError(f"node {node} cannot see {', '.join(absent)}: inputs, the model and OUT_DIR must be on a "
                             "filesystem every node shares (see docs/batch.md)")  # fmt: skip


def shutdown(ray: Any) -> None:
    try:
        ray.shutdown()
    except Exception:  # noqa: BLE001 - leaving anyway
        pass
