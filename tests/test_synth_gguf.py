"""Synthetic GGUF files (`qasr.engine.synth.gguf`) and the GGUF header check (`qasr.engine.gguf`).

The tensor table is read back by a walker written here from the GGUF spec, independently of
`qasr.engine.gguf`; CrispASR loading the files is tests/test_crispasr.py's job.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qasr.engine.gguf import ARCHITECTURE, inspect_gguf, is_gguf, require_qwen3
from qasr.engine.modelfile import ModelKind
from qasr.engine.synth import QWEN3_ALIGNER_06B, QWEN3_ASR_06B, QWEN3_ASR_17B, TINY_ALIGNER, TINY_ASR, write_model
from qasr.engine.synth import tokenizer as synth_tokenizer
from qasr.engine.synth.gguf import GGUF_TYPES, Q4_K, mel_filters, tensors, write_gguf
from qasr.engine.synth.shapes import F16, F32, Q8_0
from qasr.errors import ModelFileError, UsageError

_SIZES = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34), 12: (256, 144)}


def walk(path: Path) -> tuple[dict[str, object], dict[str, tuple[tuple[int, ...], int, int]]]:
    """(metadata scalars and string lists, name -> (ne, type, absolute data offset)), from the spec."""
    data = path.read_bytes()
    assert data[:4] == b"GGUF"
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
    assert version == 3
    pos = 24

    def string() -> str:
        nonlocal pos
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 8 + n
        return data[pos - n:pos].decode()

    meta: dict[str, object] = {}
    for _ in range(n_kv):
        key = string()
        (vtype,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if vtype == 8:
            meta[key] = string()
        elif vtype == 9:
            item, count = struct.unpack_from("<IQ", data, pos)
            pos += 12
            assert item == 8
            meta[key] = [string() for _ in range(count)]
        else:
            fmt = {4: "<I", 6: "<f", 7: "<?"}[vtype]
            (meta[key],) = struct.unpack_from(fmt, data, pos)
            pos += struct.calcsize(fmt)
    infos = []
    for _ in range(n_tensors):
        name = string()
        (nd,) = struct.unpack_from("<I", data, pos)
        ne = struct.unpack_from(f"<{nd}Q", data, pos + 4)
        kind, offset = struct.unpack_from("<IQ", data, pos + 4 + 8 * nd)
        pos += 4 + 8 * nd + 12
        infos.append((name, ne, kind, offset))
    base = (pos + 31) // 32 * 32
    table = {}
    for name, ne, kind, offset in infos:
        block, nbytes = _SIZES[kind]
        table[name] = (ne, kind, base + offset)
        assert base + offset + int(np.prod(ne)) // block * nbytes <= len(data)
    return meta, table


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gguf(TINY_ASR, tmp_path_factory.mktemp("gguf") / "tiny.synthetic.gguf", dtype="q8_0", seed=5).path


def test_the_tensor_table_is_what_crispasrs_loader_requires(tiny: Path) -> None:
    meta, table = walk(tiny)
    a, t = TINY_ASR.audio, TINY_ASR.text
    required = {f"audio.conv.{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}
    required |= {"audio.conv_out.weight", "audio.ln_post.weight", "audio.ln_post.bias", "audio.proj1.weight", "audio.proj1.bias",
                 "audio.proj2.weight", "audio.proj2.bias", "audio.mel_filters", "audio.mel_window", "token_embd.weight",
                 "output_norm.weight", "output.weight"}  # fmt: skip
    for i in range(a.layers):
        required |= {f"audio.blk.{i}.{n}.{p}" for n in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_out", "ffn_norm",
                                                          "ffn_up", "ffn_down") for p in ("weight", "bias")}  # fmt: skip
    for i in range(t.layers):
        required |= {f"blk.{i}.{n}.weight" for n in ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "attn_q_norm",
                                                       "attn_k_norm", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")}  # fmt: skip
    assert set(table) == required
    # ggml order (innermost first): a (out, in) matrix is stored as ne = (in, out)
    assert table["blk.0.attn_k.weight"][0] == (t.hidden, t.kv_heads * t.head_dim)
    assert table["audio.conv.2.weight"][:2] == ((3, 3, a.downsample_hidden, a.downsample_hidden), F16)
    assert table["output.weight"][0] == (t.hidden, t.vocab_size) and table["output.weight"][1] == Q8_0
    assert table["audio.ln_post.bias"][1] == F32 and table["audio.mel_filters"][0] == (a.mel_bins, 201)
    assert meta["general.architecture"] == ARCHITECTURE and meta["qasr.synthetic"] is True
    assert str(meta["general.name"]).endswith("-SYNTHETIC") and meta["tokenizer.ggml.model"] == "gpt2"
    assert meta["qwen3asr.audio.n_layers"] == a.layers and meta["qwen3asr.llm.vocab_size"] == t.vocab_size
    tokens = meta["tokenizer.ggml.tokens"]
    assert isinstance(tokens, list) and len(tokens) == t.vocab_size
    base = TINY_ASR.base_vocab
    assert tokens[base + synth_tokenizer.AUDIO_PAD] == "<|audio_pad|>" and meta["qwen3asr.audio_pad_token_id"] == base + synth_tokenizer.AUDIO_PAD
    assert tokens[base + synth_tokenizer.IM_END] == "<|im_end|>" and meta["qwen3asr.eos_token_id"] == base + synth_tokenizer.IM_END


def test_the_header_check_agrees_with_the_walker(tiny: Path) -> None:
    meta, table = walk(tiny)
    info = inspect_gguf(tiny)
    assert info.kind is ModelKind.ASR and info.synthetic and info.architecture == ARCHITECTURE
    assert info.tensor_count == len(table) and info.num_layers == TINY_ASR.text.layers and info.hidden_size == TINY_ASR.text.hidden
    assert {n: (t.ne, t.ggml_type) for n, t in info.tensors.items()} == {n: (ne, k) for n, (ne, k, _) in table.items()}
    assert info.get("tokenizer.ggml.tokens") == TINY_ASR.text.vocab_size  # a long array is kept as its length
    assert require_qwen3(info, ModelKind.ASR) is info and is_gguf(tiny)


def test_same_seed_same_bytes_and_another_seed_other_weights(tmp_path: Path, tiny: Path) -> None:
    again = write_gguf(TINY_ASR, tmp_path / "again.gguf", dtype="q8_0", seed=5).path
    other = write_gguf(TINY_ASR, tmp_path / "other.gguf", dtype="q8_0", seed=6).path
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (tiny, again, other)]
    assert digest[0] == digest[1] != digest[2]


def test_stop_tokens_are_never_the_best_logit(tiny: Path) -> None:
    """Output rows of every non-printable token are zero (scale 0): greedy decoding never picks a stop token."""
    _, table = walk(tiny)
    ne, kind, offset = table["output.weight"]
    row_bytes = ne[0] // 32 * 34
    data = tiny.read_bytes()
    rows = [data[offset + r * row_bytes: offset + (r + 1) * row_bytes] for r in range(ne[1])]
    vocab = synth_tokenizer.build(TINY_ASR.base_vocab, with_timestamp=False, seed=5)
    emittable = vocab.emittable(ne[1])
    assert all(rows[r] == bytes(row_bytes) for r in range(ne[1]) if not emittable[r])
    assert all(rows[r] != bytes(row_bytes) for r in range(ne[1]) if emittable[r])
    assert not emittable[TINY_ASR.base_vocab + synth_tokenizer.IM_END]


def _q4_k_values(block: bytes) -> np.ndarray:
    """ggml's dequantize_row_q4_K for one 256-value block (6-bit scales and mins packed in 12 bytes)."""
    d, dmin = np.frombuffer(block[:4], dtype=np.float16).astype(np.float32)
    sc, qs = block[4:16], np.frombuffer(block[16:], dtype=np.uint8)
    out = []
    for j in range(8):
        if j < 4:
            s, m = sc[j] & 63, sc[j + 4] & 63
        else:
            s, m = (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4), (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4)
        q = qs[(j // 2) * 32:(j // 2) * 32 + 32]
        q = (q & 0xF) if j % 2 == 0 else (q >> 4)
        out.append(d * s * q.astype(np.float32) - dmin * m)
    return np.concatenate(out)


def test_q4_k_weights_are_centred_with_the_planned_spread(tmp_path: Path) -> None:
    text = replace(TINY_ASR.text, hidden=256, heads=2, head_dim=128, intermediate=512)  # 256-wide rows: q4_k applies
    arch = replace(TINY_ASR, text=text)
    path = write_gguf(arch, tmp_path / "k.gguf", dtype="q4_k", seed=1).path
    _, table = walk(path)
    ne, kind, offset = table["blk.0.ffn_up.weight"]
    assert kind == Q4_K and table["audio.blk.0.attn_q.weight"][1] == Q8_0  # below 8 bits the audio tower stays q8_0
    data = path.read_bytes()
    values = np.concatenate([_q4_k_values(data[offset + k * 144: offset + (k + 1) * 144]) for k in range(200)])
    target = 1 / np.sqrt(ne[0])
    assert abs(values.mean()) < 0.1 * target and 0.6 * target < values.std() < 1.6 * target


def test_mel_filters_are_slaney_triangles() -> None:
    fb = mel_filters(128)
    assert fb.shape == (201, 128) and (fb >= 0).all() and fb.dtype == np.float32
    peaks = fb.argmax(axis=0)
    assert (np.diff(peaks) >= 0).all() and peaks[0] <= 2 and peaks[-1] >= 190  # low to high, covering 0-8 kHz
    assert np.count_nonzero(fb.sum(axis=0)) == 128  # every band hears something


@pytest.mark.parametrize(("arch", "dtype", "published"), [
    (QWEN3_ASR_06B, "f16", 1.88e9), (QWEN3_ASR_06B, "q4_k", 631e6),
])  # fmt: skip
def test_the_published_sizes_come_out_of_the_layout(arch, dtype: str, published: float) -> None:  # type: ignore[no-untyped-def]
    # CrispASR's model card (cstr/qwen3-asr-0.6b-GGUF) gives sizes in MB; the tokenizer adds ~4-6 MB.
    weights = sum(s.nbytes for s in tensors(arch, GGUF_TYPES[dtype]))
    assert abs(weights + 5e6 - published) / published < 0.02


def test_the_aligner_layout_and_the_full_size_plan() -> None:
    head = {s.name: s for s in tensors(QWEN3_ALIGNER_06B, Q8_0)}["output.weight"]
    assert head.dims == (5000, 1024)
    big = tensors(QWEN3_ASR_17B, F16)
    assert sum(s.nbytes for s in big) == pytest.approx(4.7e9, rel=0.01)
    assert max(s.nbytes for s in big) < 700e6  # one tensor is the most a chunked writer holds: never the model


def test_refusals_are_one_clear_error(tmp_path: Path, tiny: Path) -> None:
    with pytest.raises(UsageError, match="f16, q8_0, q4_0, q4_k"):
        write_gguf(TINY_ASR, tmp_path / "x.gguf", dtype="q2_k")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny.read_bytes()[: tiny.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="truncated"):
        inspect_gguf(cut)
    head_only = tmp_path / "head.gguf"
    head_only.write_bytes(tiny.read_bytes()[:100])
    with pytest.raises(ModelFileError, match="truncated"):
        inspect_gguf(head_only)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + struct.pack("<Q", 1 << 40))
    with pytest.raises(ModelFileError, match="corrupt|truncated"):
        inspect_gguf(junk)
    ggmm = write_model(TINY_ASR, tmp_path / "m.bin").path
    with pytest.raises(ModelFileError, match="chatllm.cpp model file; CrispASR needs a GGUF"):
        inspect_gguf(ggmm)
    with pytest.raises(ModelFileError, match="not found"):
        inspect_gguf(tmp_path / "missing.gguf")
    aligner = inspect_gguf(write_gguf(TINY_ALIGNER, tmp_path / "al.gguf", dtype="q8_0").path)
    assert aligner.kind is ModelKind.ALIGNER
    with pytest.raises(ModelFileError, match="is a Qwen3-ForcedAligner model, but a Qwen3-ASR model is needed"):
        require_qwen3(aligner, ModelKind.ASR)
    foreign = tmp_path / "llama.gguf"
    data = bytearray(tiny.read_bytes())
    at = data.index(b"qwen3asr")
    data[at:at + 8] = b"llamaxyz"  # general.architecture's value is the first occurrence
    foreign.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="GGUF model for 'llamaxyz', not Qwen3-ASR"):
        require_qwen3(inspect_gguf(foreign), ModelKind.ASR)
