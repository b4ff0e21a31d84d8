"""qasr batch on a real 2-node Ray cluster started here with ``ray start`` (loopback, 1 CPU per node).

About 30 inputs: 27 tones, one 10-minute file of real speech with pauses (cut by Silero into pieces
that both nodes take), a corrupt file and a poison input (the double aborts on its exact duration).
The second node's processes are killed mid-run: nothing is lost, every good input is done once,
the corrupt and the poison inputs are failed with their reasons, exit 1. A rerun does no work.
``ray stop --force`` runs at the end whatever happens. Marked ``cluster``: ``-m 'not cluster'``
leaves it out; it runs in the default suite.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import SHARED_DATA, double_env, sine

pytest.importorskip("ray.data", reason="qasr batch needs ray[data] (pip install 'qasr[cluster]')")
pytestmark = pytest.mark.cluster

RAY = Path(sys.executable).with_name("ray")
POISON_MS = 7770
TONES = 27


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on loopback (held open together so they differ)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def ray_start(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run([str(RAY), "start", *args], capture_output=True, text=True, env=env, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def node_ports(ports: list[int], worker_base: int) -> list[str]:
    """The per-node ports Ray asks to be distinct when two nodes share a machine."""
    om, nm, agent, agent_grpc, metrics, runtime_env = ports
    return ["--object-manager-port", str(om), "--node-manager-port", str(nm), "--dashboard-agent-listen-port", str(agent),
            "--dashboard-agent-grpc-port", str(agent_grpc), "--metrics-export-port", str(metrics),
            "--runtime-env-agent-port", str(runtime_env), "--min-worker-port", str(worker_base),
            "--max-worker-port", str(worker_base + 199)]  # fmt: skip


#: Ray's token authentication, with a token of this session's own (never the user's ~/.ray/auth_token):
#: the nodes and the driver must all hold it.
AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex(), "RAY_USAGE_STATS_ENABLED": "0"}


#: Every Ray process of the cluster (the nodes, their workers, the driver) keeps 127.0.0.1 as its
#: address: tests/ray_loopback/sitecustomize.py (Ray would otherwise use the machine's own address).
LOOPBACK = {"PYTHONPATH": os.pathsep.join([str(Path(__file__).parent / "ray_loopback"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """(address, the second node's node-manager port); every Ray process on this machine stopped after."""
    env = {**os.environ, **AUTH, **LOOPBACK}
    ports = free_ports(14)
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", str(80 * 1000 * 1000), "--disable-usage-stats"]
    base = 20_000 + (os.getpid() % 200) * 100
    try:
        ray_start(["--head", "--port", str(ports[0]), "--include-dashboard", "false", *common, *node_ports(ports[2:8], base)], env)
        ray_start(["--address", f"127.0.0.1:{ports[0]}", *common, *node_ports(ports[8:14], base + 200)], env)
        yield f"127.0.0.1:{ports[0]}", ports[9]
    finally:
        subprocess.run([str(RAY), "stop", "--force"], capture_output=True, env=env, timeout=180)


def long_speech(path: Path, minutes: float = 10.0) -> None:
    """jfk.wav again and again with 3 s pauses, ``minutes`` long: the VAD cuts it into ~30 s pieces."""
    src = SHARED_DATA / "jfk.wav"
    if not src.exists():
        pytest.skip("../shared/data/jfk.wav is absent: the 10-minute file needs real speech for Silero")
    speech, rate = soundfile.read(str(src), dtype="float32")
    pause = np.zeros(3 * rate, np.float32)
    one = np.concatenate([speech, pause])
    reps = int(np.ceil(minutes * 60 * rate / len(one)))
    soundfile.write(str(path), np.concatenate([pause] + [one] * reps)[: int(minutes * 60 * rate)], rate)


def kill_node(node_manager_port: int) -> int:
    """SIGKILL every process of the node with this node-manager port (its raylet and its workers)."""
    killed = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"node_manager_port={node_manager_port}" in cmd or f"node-manager-port={node_manager_port}" in cmd:
            try:
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """Poll ``condition`` until it holds (the event), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def manifest_lines(out: Path) -> list[dict[str, object]]:
    path = out / "manifest.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def test_a_two_node_cluster_loses_nothing(cluster: tuple[str, int], double_lib: Path, asr_model_file: Path, tmp_path: Path) -> None:
    address, second_node = cluster
    inputs, out = tmp_path / "archive", tmp_path / "out"
    (inputs / "tones").mkdir(parents=True)
    long_speech(inputs / "meeting.wav")
    for i in range(TONES):
        soundfile.write(str(inputs / "tones" / f"t{i:02d}.wav"), sine(1.0 + (i % 4) * 0.25, freq=200.0 + 25 * i), 16_000)
    (inputs / "corrupt.mp3").write_bytes(b"ID3 this is no mp3")
    soundfile.write(str(inputs / "poison.wav"), sine(POISON_MS / 1000), 16_000)
    good = {"meeting.wav"} | {f"tones/t{i:02d}.wav" for i in range(TONES)}
    env = {**double_env(double_lib, abort_at_ms=str(POISON_MS), words="audio", token_delay_ms="40"), **AUTH, **LOOPBACK}
    args = [sys.executable, "-m", "qasr", "batch", str(inputs), "-o", str(out), "-m", str(asr_model_file), "--cluster", address,
            "--actors", "2", "--threads", "1", "-f", "json,vtt", "--json"]  # fmt: skip

    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL) as run:
        try:
            wait_for(lambda: len(manifest_lines(out)) >= 6 or run.poll() is not None, 300, "the first inputs to finish")
            assert run.poll() is None, "the run ended before the second node could be killed"
            assert kill_node(second_node) >= 1
            stdout, stderr = run.communicate(timeout=420)
        finally:
            if run.poll() is None:
                run.kill()
    assert run.returncode == 1, stderr[-4000:]
    summary = json.loads(stdout)
    rows = {r["id"]: r for r in manifest_lines(out)}
    assert len(manifest_lines(out)) == len(rows) == TONES + 3
    assert {i for i, r in rows.items() if r["status"] == "done"} == good
    assert (summary["done"], summary["failed"]) == (len(good), 2)
    assert "cannot decode audio" in str(rows["corrupt.mp3"]["error"])
    assert rows["poison.wav"]["signal"] == "SIGABRT (signal 6)" and "died on this input 3 times" in str(rows["poison.wav"]["error"])
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.suffix in (".json", ".vtt"))
    assert written == sorted(f"{Path(i).with_suffix('')}.{f}" for i in good for f in ("json", "vtt"))  # once each, nothing else
    meeting = json.loads((out / "meeting.json").read_text())
    assert meeting["engine_calls"] >= 15 and meeting["audio_seconds"] == 600.0
    starts = [s["start"] for s in meeting["segments"]]
    assert starts == sorted(starts) and [s["id"] for s in meeting["segments"]] == list(range(len(starts)))
    assert summary["actor_processes"] >= 2  # both nodes' actors served pieces

    rerun = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL)
    again = json.loads(rerun.stdout)
    assert rerun.returncode == 1 and (again["done"], again["skipped"], again["failed"], again["actors"]) == (0, len(good), 2, 0)
