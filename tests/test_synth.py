"""Synthetic models (`qasr.engine.synth`, ``qasr models synth``): shapes, file format, marks, loaders.

Small files come from the same writer as the full-size ones (`TINY_ASR` / `TINY_ALIGNER` only change
the shapes). The real-engine tests load them in a child process and skip without QASR_CHATLLM_LIB.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, double_env, engine_child, run_qasr

from qasr.engine import registry
from qasr.engine.modelfile import ModelKind, inspect_model_file
from qasr.engine.synth import QWEN3_ALIGNER_06B, QWEN3_ASR_06B, QWEN3_ASR_17B, TINY_ALIGNER, TINY_ASR, catalog, write_model
from qasr.engine.synth import tokenizer as synth_tokenizer
from qasr.engine.synth.shapes import Q4_0, Q8_0, parameter_count, tensors
from qasr.engine.synth.writer import plan
from qasr.errors import ModelFileError, UsageError


def read_tensor_table(path: Path) -> dict[str, tuple[tuple[int, ...], int, int]]:
    """name -> (dims, ggml type, data offset), walked independently of qasr.engine.modelfile."""
    data = path.read_bytes()
    off_tensors = struct.unpack_from("<I", data, 16)[0]
    pos, table = off_tensors, {}
    sizes = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34)}
    while pos < len(data):
        (n,) = struct.unpack_from("<i", data, pos)
        name = data[pos + 4:pos + 4 + n].decode()
        pos += 4 + n
        (ndim,) = struct.unpack_from("<i", data, pos)
        dims = struct.unpack_from(f"<{ndim}i", data, pos + 4)
        (kind,) = struct.unpack_from("<i", data, pos + 4 + 4 * ndim)
        pos = (pos + 8 + 4 * ndim + 15) // 16 * 16
        table[name] = (dims, kind, pos)
        block, nbytes = sizes[kind]
        pos += int(np.prod(dims)) // block * nbytes
    assert pos == len(data)
    return table


def read_meta(path: Path) -> dict:
    data = path.read_bytes()
    off_config = struct.unpack_from("<I", data, 8)[0]
    return json.loads(data[20:off_config].rstrip(b"\0"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(TINY_ASR, tmp_path_factory.mktemp("synth") / "tiny-asr.synthetic.bin", seed=7).path


@pytest.fixture(scope="module")
def tiny_aligner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model(TINY_ALIGNER, tmp_path_factory.mktemp("synth") / "tiny-al.synthetic.bin", dtype="q8_0", seed=7).path


# --- the published shapes -----------------------------------------------------------------------

@pytest.mark.parametrize("arch", [QWEN3_ASR_06B, QWEN3_ASR_17B, QWEN3_ALIGNER_06B], ids=lambda a: a.name)
def test_q8_0_layout_reproduces_the_published_file_size(arch) -> None:  # type: ignore[no-untyped-def]
    # One wrong layer count or width moves the size by megabytes; the tokenizer section is what differs.
    size = plan(arch, "q8_0").file_bytes
    assert abs(size - arch.published_q8_0_bytes) < 100_000, size - arch.published_q8_0_bytes


def test_parameter_counts_and_heads() -> None:
    assert parameter_count(QWEN3_ASR_06B) == pytest.approx(0.94e9, rel=0.01)
    assert parameter_count(QWEN3_ASR_17B) == pytest.approx(2.35e9, rel=0.01)
    head = {s.name: s for s in tensors(QWEN3_ALIGNER_06B, Q4_0)}["lm_head.weight"]
    assert head.dims == (5000, 1024)
    embed = {s.name: s for s in tensors(QWEN3_ASR_17B, Q4_0)}["model.embed_tokens.weight"]
    assert embed.dims == (151_936, 2048) and embed.ggml_type == Q4_0


def test_dtypes_follow_the_converter() -> None:
    by_name = {s.name: s for s in tensors(QWEN3_ASR_06B, Q8_0)}
    assert by_name["audio.conv2d2.weight"].ggml_type == 1  # 3x3 kernels: f16
    assert by_name["audio.layers.0.input_layernorm.bias"].ggml_type == 0  # 1-D: f32
    assert by_name["model.layers.27.mlp.down_proj.weight"].ggml_type == Q8_0
    assert by_name["audio.conv_out.weight"].dims == (896, 480 * 16)


# --- the file -----------------------------------------------------------------------------------

def test_modelfile_accepts_it_and_sees_the_mark(tiny: Path) -> None:
    info = inspect_model_file(tiny)
    assert info.synthetic and info.kind is ModelKind.ASR and info.dtype == "q4_0"
    assert info.name.endswith("-SYNTHETIC") and info.to_dict()["synthetic"] is True
    assert info.tensor_count == len(tensors(TINY_ASR, Q4_0))
    assert info.weight_bytes == sum(s.nbytes for s in tensors(TINY_ASR, Q4_0))
    assert info.file_bytes == plan(TINY_ASR, "q4_0", seed=7).file_bytes
    assert "English" in info.languages


def test_the_mark_survives_a_rename(tiny: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "qwen3-asr-0.6b-q4_0.bin"
    renamed.write_bytes(tiny.read_bytes())
    assert inspect_model_file(renamed).synthetic
    model = registry.get("qwen3-asr-0.6b-q4_0")
    with pytest.raises(ModelFileError, match="SYNTHETIC"):
        registry.check_file(renamed, model, None)
    state = registry.local_state(model, tmp_path)
    assert state.present and not state.valid and "SYNTHETIC" in (state.problem or "")


def test_a_real_model_is_not_synthetic() -> None:
    shared = SHARED_DATA.parent / "models" / "tiny-asr-a-q4_0.bin"
    if not shared.exists():
        pytest.skip(f"{shared} is absent")
    assert not inspect_model_file(shared).synthetic


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = write_model(TINY_ASR, tmp_path / "a.bin", seed=3).path
    b = write_model(TINY_ASR, tmp_path / "b.bin", seed=3).path
    c = write_model(TINY_ASR, tmp_path / "c.bin", seed=4).path
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b, c)]
    assert digest[0] == digest[1] != digest[2]
    assert not list(tmp_path.glob(".*.part"))  # no temporary file left behind


def test_an_interrupted_write_leaves_nothing(tmp_path: Path) -> None:
    from qasr.progress import SilentProgress

    class Stop(SilentProgress):
        def advance(self, key: str, amount: float = 1) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_model(TINY_ASR, tmp_path / "x.synthetic.bin", progress=Stop())
    assert not list(tmp_path.iterdir())


def test_meta_carries_what_the_engine_reads(tiny: Path) -> None:
    meta = read_meta(tiny)
    audio = meta["config.json"]["thinker_config"]["audio_config"]
    assert (audio["d_model"], audio["encoder_layers"], audio["encoder_attention_heads"]) == (64, 2, 2)
    assert meta["preprocessor_config.json"]["hop_length"] == 160
    added = {v["content"]: int(k) for k, v in meta["tokenizer_config.json"]["added_tokens_decoder"].items()}
    base = TINY_ASR.base_vocab
    assert added["<|im_end|>"] == base + 2 and added["<asr_text>"] == base + 61 and "<timestamp>" not in added
    assert meta["qasr_synthetic"]["synthetic"] is True and meta["qasr_synthetic"]["seed"] == 7


def test_aligner_has_the_timestamp_head(tiny_aligner: Path) -> None:
    info = inspect_model_file(tiny_aligner)
    assert info.kind is ModelKind.ALIGNER and info.synthetic and info.dtype == "q8_0"
    meta = read_meta(tiny_aligner)
    assert meta["config.json"]["timestamp_segment_time"] == 80
    assert meta["config.json"]["thinker_config"]["classify_num"] == 5000
    dims, kind, _ = read_tensor_table(tiny_aligner)["lm_head.weight"]
    assert dims == (5000, 64) and kind == Q8_0


def test_tokenizer_section_round_trips() -> None:
    vocab = synth_tokenizer.build(1984, with_timestamp=True, seed=1)
    raw, pos, tokens = synth_tokenizer.section(vocab), 0, []
    while True:
        (n,) = struct.unpack_from("<i", raw, pos)
        pos += 4
        if n < 0:
            break
        tokens.append((raw[pos:pos + n].decode(), raw[pos + n]))
        pos += n + 1
    merges = []
    while True:
        (n,) = struct.unpack_from("<i", raw, pos)
        pos += 4
        if n < 0:
            break
        merges.append(raw[pos:pos + n].decode())
        pos += n
    assert pos == len(raw) and len(tokens) == 1984 + 63 and len(merges) == 1984 - 256
    texts = [t for t, _ in tokens]
    assert set(synth_tokenizer.byte_alphabet()) <= set(texts[:256])  # every byte encodable
    assert texts[1984 + 2] == "<|im_end|>" and texts[1984 + 62] == "<timestamp>"
    assert {kind for _, kind in tokens[1984:]} == {4} and {kind for _, kind in tokens[:1984]} == {1}
    index = {t: i for i, t in enumerate(texts)}
    for rank, merge in enumerate(merges):  # each merge joins two earlier tokens into the next id
        left, right = merge.split(" ")
        assert index[left + right] == 256 + rank and index[left] < 256 + rank and index[right] < 256 + rank


def test_stop_tokens_can_never_win(tiny: Path) -> None:
    dims, kind, offset = read_tensor_table(tiny)["lm_head.weight"]
    rows, per_row = dims[0], dims[1] // 32
    blocks = np.frombuffer(tiny.read_bytes(), np.uint8, rows * per_row * 18, offset).reshape(rows, per_row, 18)
    scales = blocks[:, :, :2].copy().view(np.float16)[..., 0]
    base = TINY_ASR.base_vocab
    assert not scales[base:].any()  # every special token (im_end too) and the tail: logit exactly 0
    assert (scales[300:base] != 0).all()  # merged, printable tokens are live
    vocab = synth_tokenizer.build(base, with_timestamp=False, seed=7)
    assert vocab.emittable(rows)[:256].count(True) == 95  # the printable ASCII bytes and the space


@pytest.mark.parametrize("dtype", ["q4_0", "q8_0"])
def test_double_loader_rejects_nothing_the_writer_writes(double_lib: Path, tmp_path: Path, dtype: str) -> None:
    # Every architecture kind and quantization the writer produces passes the Python header check
    # and loads on the double, so the lab and the tests can run on anything `models synth` writes.
    asr = write_model(TINY_ASR, tmp_path / "a.synthetic.bin", dtype=dtype, seed=1).path
    aligner = write_model(TINY_ALIGNER, tmp_path / "b.synthetic.bin", dtype=dtype, seed=1).path
    for path, kind in ((asr, ModelKind.ASR), (aligner, ModelKind.ALIGNER)):
        info = inspect_model_file(path)
        assert info.synthetic and info.kind is kind and info.dtype == dtype
    code = (
        "import json, sys\n"
        "from qasr.engine.model import Model\n"
        "from qasr.engine.modelfile import ModelKind\n"
        f"a = Model({str(asr)!r}, threads=2, max_length=512)\n"
        f"b = Model({str(aligner)!r}, kind=ModelKind.ALIGNER)\n"
        "print(json.dumps([a.file.synthetic, a.info.purpose, b.file.synthetic, b.info.purpose]))\n"
    )
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=double_env(double_lib), timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [True, "ASR", True, "Chat"]


def test_stand_in_writes_once_and_refuses_real_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelfiles import write_model as write_real

    # The published shapes take seconds and ~0.5 GB; the same path logic with the tiny shapes.
    monkeypatch.setattr(catalog, "resolve", lambda name: (registry.get(name), TINY_ASR, "q4_0"))
    path = catalog.stand_in("qwen3-asr-0.6b-q4_0", tmp_path)
    assert path == tmp_path / "qwen3-asr-0.6b-q4_0.synthetic.bin" and inspect_model_file(path).synthetic
    stamp = path.stat().st_mtime_ns
    assert catalog.stand_in("qwen3-asr-0.6b-q4_0", tmp_path) == path and path.stat().st_mtime_ns == stamp  # kept
    assert catalog.stand_in(str(path)) == path  # a synthetic file given by path is used as it is
    with pytest.raises(UsageError, match="is a real model"):
        catalog.stand_in(str(write_real(tmp_path / "real.bin")))
    with pytest.raises(ModelFileError):
        catalog.stand_in(str(tmp_path / "missing.bin"))


# --- the command --------------------------------------------------------------------------------

def test_cli_synth_list_and_doctor(tmp_path: Path) -> None:
    env = {**os.environ, "QASR_MODELS_DIR": str(tmp_path)}
    r = run_qasr(["models", "synth", "qwen3-asr-0.6b-q4_0", "-o", str(tmp_path / "x.synthetic.bin"), "--json"], env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["synthetic"] and doc["header"]["synthetic"] and doc["architecture"] == "Qwen3-ASR-0.6B"
    assert doc["file_bytes"] == (tmp_path / "x.synthetic.bin").stat().st_size == plan(QWEN3_ASR_06B, "q4_0").file_bytes
    r = run_qasr(["models", "synth", "qwen3-asr-0.6b-q4_0", "-o", str(tmp_path / "x.synthetic.bin")], env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--force" in r.stderr
    listed = json.loads(run_qasr(["models", "list", "--json"], env).stdout)
    assert [f["path"] for f in listed["synthetic"]] == [str(tmp_path / "x.synthetic.bin")]
    assert all(m["local"]["status"] == "missing" for m in listed["models"])  # not taken for the published file
    text = run_qasr(["models", "list"], env).stdout
    assert "x.synthetic.bin" in text and "SYNTHETIC (random weights)" in text
    checks = json.loads(run_qasr(["doctor", "--json"], env).stdout)["checks"]
    assert [c["name"] for c in checks if c.get("synthetic")] == ["SYNTHETIC x.synthetic.bin"]


def test_transcribe_says_synthetic_once_and_caps_the_tokens(double_lib: Path, tiny: Path, tmp_path: Path) -> None:
    import soundfile
    from conftest import sine

    audio = tmp_path / "a.wav"
    soundfile.write(str(audio), sine(0.5), 16_000)
    runs = {}
    for cap in ([], ["--max-tokens", "3"]):
        r = run_qasr(["transcribe", str(audio), "-m", str(tiny), "-f", "json", *cap], double_env(double_lib))
        assert r.returncode == 0, r.stderr
        assert r.stderr.count("SYNTHETIC model") == 1 and "its transcripts are meaningless" in r.stderr
        runs[bool(cap)] = (json.loads(r.stdout)["tokens"], r.stderr)
    assert runs[True][0] == 3 and runs[False][0] > 3  # the double stops by itself after its sentence
    assert "stops after 3 tokens" in runs[True][1] and "--max-tokens N" in runs[False][1]


@pytest.mark.parametrize("args, words", [
    (["models", "synth", "qwen3-aligner-0.6b-f16"], "cannot synthesize"),
    (["models", "synth", "nope"], "unknown model"),
])
def test_cli_synth_refuses_one_line(args: list[str], words: str, tmp_path: Path) -> None:
    r = run_qasr(args, {**os.environ, "QASR_MODELS_DIR": str(tmp_path)})
    assert r.returncode == 2 and words in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not list(tmp_path.iterdir())


def test_catalog_names_and_paths(tmp_path: Path) -> None:
    names = catalog.names()
    assert "qwen3-aligner-0.6b-f16" not in names  # chatllm.cpp f16: not a type our ggmm writer makes
    chatllm = [n for n in names if (m := registry.find(n)) is not None and m.file_format == "ggmm"]
    assert len(chatllm) == 6 and "crispasr-qwen3-asr-0.6b-f16" in names and "qwen3-asr-1.7b-hf" in names
    model, arch, dtype = catalog.resolve("qwen3-asr-1.7b-q8_0")
    assert arch is QWEN3_ASR_17B and dtype == "q8_0"
    assert catalog.default_path(model, tmp_path) == tmp_path / "qwen3-asr-1.7b-q8_0.synthetic.bin"
    gguf, arch, dtype = catalog.resolve("crispasr-qwen3-asr-1.7b-q4_k")
    assert arch is QWEN3_ASR_17B and dtype == "q4_k"
    assert catalog.default_path(gguf, tmp_path) == tmp_path / "crispasr-qwen3-asr-1.7b-q4_k.synthetic.gguf"
    hf, arch, dtype = catalog.resolve("qwen3-asr-1.7b-hf")
    assert arch is QWEN3_ASR_17B and dtype == "bf16" and catalog.default_path(hf, tmp_path) == tmp_path / "qwen3-asr-1.7b-hf.synthetic"
    with pytest.raises(UsageError):
        catalog.stand_in("crispasr-qwen3-asr-0.6b-q4_k", tmp_path)  # stand-ins are chatllm.cpp files
    with pytest.raises(UsageError):
        write_model(TINY_ASR, tmp_path / "t.bin", dtype="f16")


# --- the real engine ----------------------------------------------------------------------------

REAL = os.environ.get("QASR_CHATLLM_LIB")
requires_lib = pytest.mark.skipif(not REAL or not Path(REAL).is_file(),
                                  reason="needs a real libchatllm: set QASR_CHATLLM_LIB to upstream's libchatllm.so")


@pytest.mark.real_engine
@requires_lib
def test_real_engine_loads_and_decodes_exactly_n_tokens(tiny: Path, tiny_aligner: Path) -> None:
    wav = SHARED_DATA / "jfk.wav"
    if not wav.exists():
        pytest.skip(f"{wav} is absent")
    r = engine_child(f"""
        import json, os, sys
        from qasr.engine.model import Model
        from qasr.engine.modelfile import ModelKind
        m = Model({str(tiny)!r}, max_length=1024)
        counts = []
        for n in (5, 40):
            counts.append(len(list(m.transcribe_raw({str(wav)!r}, max_tokens=n))))
        cursor = m.engine.lib.chatllm_get_cursor(m._handle())
        al = Model({str(tiny_aligner)!r}, kind=ModelKind.ALIGNER, settings={{"format": "json"}})
        words = json.loads("".join(al.align_raw({str(wav)!r}, "and so my fellow americans")))
        print(json.dumps({{"counts": counts, "cursor": cursor, "info": m.info.raw, "words": words}}))
        sys.stdout.flush(); os._exit(0)
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["counts"] == [5, 40]  # one chunk per token, and no stop token before the cap
    assert out["info"]["purpose"] == "ASR" and out["info"]["name"].endswith("-SYNTHETIC")
    assert [w["text"] for w in out["words"]] == ["and", "so", "my", "fellow", "americans"]
