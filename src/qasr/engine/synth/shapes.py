"""The published shapes of Qwen3-ASR-0.6B, Qwen3-ASR-1.7B and Qwen3-ForcedAligner-0.6B, and the
tensor table chatllm.cpp expects for them.

Where the numbers come from (no real weights or configs can be downloaded here):

* Audio encoder (``thinker_config.audio_config``) and text decoder (``thinker_config.text_config``)
  as in the models' Hugging Face ``config.json``, quoted by several public re-implementations:
  antirez/qwen-asr ``MODEL.md`` (a table for both ASR sizes: encoder d_model 896/1024, layers 18/24,
  heads 14/16, FFN 3584/4096, output_dim 1024/2048; decoder hidden 1024/2048, 28 layers, 16 heads,
  8 KV heads, head_dim 128, intermediate 3072/6144, vocab 151,936), the CrispASR GGUF card of
  Qwen3-ASR-0.6B (18-layer encoder, 896 -> 1024), and a Rust aligner's test fixture of the
  ForcedAligner-0.6B ``config.json`` (24-layer 1024-wide encoder, output_dim 1024, the 0.6B decoder,
  ``vocab_size`` 152,064, ``classify_num`` 5,000, ``timestamp_token_id`` 151,705,
  ``timestamp_segment_time`` 80). ``downsample_hidden_size`` 480, ``n_window`` 50,
  ``n_window_infer`` 800, ``conv_chunksize`` 500, ``max_source_positions`` 1500, 128 mel bins,
  ``mrope_section`` [24, 20, 20], ``rope_theta`` 1e6 and ``max_position_embeddings`` 65,536 come from
  the same configs (and the tiny models in ../shared, which copy the real layout).
* Cross-check against chatllm.cpp's own store (``scripts/models.json``): with these shapes, the q8_0
  weight bytes plus a ~4.3 MB tokenizer section reproduce the published q8_0 file sizes
  (1,005,656,864 / 2,505,570,400 / 984,439,424 bytes) with the same residual for all three files,
  which it would not be if a layer count or width were wrong (`tests/test_synth.py` pins it).
* Token ids (``<|endoftext|>`` 151,643, ``<|im_start|>`` 151,644, ``<|im_end|>`` 151,645,
  ``<|audio_start|>`` 151,669, ``<|audio_end|>`` 151,670, ``<|audio_pad|>`` 151,676, ``<asr_text>``
  151,704, ``<timestamp>`` 151,705) from the same configs; ids 0..151,642 are the byte-level BPE.

The tensor names, and which tensors are f32 / f16 / quantized, follow chatllm.cpp's converter
(``convert.py``: ``Qwen3ASRConverter``) so a synthetic file loads exactly like a converted one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from qasr.engine.modelfile import GGML_TYPES, MODEL_TYPE_QWEN3_ASR, MODEL_TYPE_QWEN3_FORCED_ALIGNER, ModelKind

F32, F16, Q4_0, Q8_0 = 0, 1, 2, 8
QUANT_TYPES = {"q4_0": Q4_0, "q8_0": Q8_0}
BLOCK = 32  # elements per q4_0 / q8_0 block
BLOCK_BYTES = {Q4_0: 18, Q8_0: 34}
TENSOR_ALIGNMENT = 16

FIRST_SPECIAL = 151_643  # <|endoftext|>: the byte-level BPE vocabulary is ids 0..151,642


@dataclass(frozen=True)
class AudioShape:
    d_model: int
    layers: int
    heads: int
    ffn: int
    output_dim: int
    downsample_hidden: int = 480
    mel_bins: int = 128
    max_source_positions: int = 1500
    n_window: int = 50
    n_window_infer: int = 800
    conv_chunksize: int = 500

    @property
    def conv_freq(self) -> int:
        """Mel bins left after three stride-2 convolutions (16 for 128 bins)."""
        return (((self.mel_bins + 1) // 2 + 1) // 2 + 1) // 2


@dataclass(frozen=True)
class TextShape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab_size: int  # rows of the embedding (and of lm_head for ASR)
    max_position: int = 65_536
    rope_theta: float = 1_000_000.0
    mrope_section: tuple[int, ...] = (24, 20, 20)


@dataclass(frozen=True)
class Architecture:
    """One model's shapes. ``base_vocab`` is the number of byte-level BPE tokens; the special tokens
    follow at ``base_vocab + offset`` in the real relative layout."""

    name: str
    kind: ModelKind
    audio: AudioShape
    text: TextShape
    base_vocab: int = FIRST_SPECIAL
    classify_num: int | None = None  # the aligner's timestamp head (5000 classes of 80 ms)
    timestamp_segment_ms: int = 80
    published_q8_0_bytes: int | None = None  # chatllm.cpp store, for the cross-check
    languages: tuple[str, ...] = field(default=(), compare=False)

    @property
    def model_type(self) -> int:
        return MODEL_TYPE_QWEN3_FORCED_ALIGNER if self.kind is ModelKind.ALIGNER else MODEL_TYPE_QWEN3_ASR

    @property
    def head_rows(self) -> int:
        return self.classify_num if self.classify_num else self.text.vocab_size


# The 30 languages of ``config.json: support_languages`` (the engine maps ``--set language`` with it).
LANGUAGES = (
    "Chinese", "English", "Cantonese", "Arabic", "German", "French", "Spanish", "Portuguese", "Indonesian",
    "Italian", "Korean", "Russian", "Thai", "Vietnamese", "Japanese", "Turkish", "Hindi", "Malay", "Dutch",
    "Swedish", "Danish", "Finnish", "Polish", "Czech", "Filipino", "Persian", "Greek", "Hungarian",
    "Macedonian", "Romanian",
)

_TEXT_06B = TextShape(hidden=1024, layers=28, heads=16, kv_heads=8, head_dim=128, intermediate=3072, vocab_size=151_936)

QWEN3_ASR_06B = Architecture(
    "Qwen3-ASR-0.6B", ModelKind.ASR,
    AudioShape(d_model=896, layers=18, heads=14, ffn=3584, output_dim=1024),
    _TEXT_06B, published_q8_0_bytes=1_005_656_864, languages=LANGUAGES,
)
QWEN3_ASR_17B = Architecture(
    "Qwen3-ASR-1.7B", ModelKind.ASR,
    AudioShape(d_model=1024, layers=24, heads=16, ffn=4096, output_dim=2048),
    TextShape(hidden=2048, layers=28, heads=16, kv_heads=8, head_dim=128, intermediate=6144, vocab_size=151_936),
    published_q8_0_bytes=2_505_570_400, languages=LANGUAGES,
)
QWEN3_ALIGNER_06B = Architecture(
    "Qwen3-ForcedAligner-0.6B", ModelKind.ALIGNER,
    AudioShape(d_model=1024, layers=24, heads=16, ffn=4096, output_dim=1024),
    TextShape(hidden=1024, layers=28, heads=16, kv_heads=8, head_dim=128, intermediate=3072, vocab_size=152_064),
    classify_num=5000, published_q8_0_bytes=984_439_424, languages=LANGUAGES,
)

# A few-MB model with the same structure, for tests and quick trials (not a published model).
TINY_ASR = Architecture(
    "tiny-synthetic-asr", ModelKind.ASR,
    AudioShape(d_model=64, layers=2, heads=2, ffn=128, output_dim=64, downsample_hidden=32),
    TextShape(hidden=64, layers=2, heads=2, kv_heads=1, head_dim=32, intermediate=128, vocab_size=2048,
              mrope_section=(6, 5, 5)),
    base_vocab=1984, languages=LANGUAGES,
)
TINY_ALIGNER = Architecture(
    "tiny-synthetic-aligner", ModelKind.ALIGNER, TINY_ASR.audio, TINY_ASR.text, base_vocab=1984,
    classify_num=5000, languages=LANGUAGES,
)

# Registry parameter label -> architecture, per kind.
BY_SIZE: dict[tuple[ModelKind, str], Architecture] = {
    (ModelKind.ASR, "0.6B"): QWEN3_ASR_06B,
    (ModelKind.ASR, "1.7B"): QWEN3_ASR_17B,
    (ModelKind.ALIGNER, "0.6B"): QWEN3_ALIGNER_06B,
}


@dataclass(frozen=True)
class TensorSpec:
    """One tensor as the file stores it: dims outermost first (PyTorch order), a ggml type id."""

    name: str
    dims: tuple[int, ...]
    ggml_type: int
    init: str = "weight"  # weight | norm | bias | embedding | head

    @property
    def elements(self) -> int:
        n = 1
        for d in self.dims:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        _, block, block_bytes = GGML_TYPES[self.ggml_type]  # whole blocks: f32/f16 are blocks of one
        return self.elements // block * block_bytes

    @property
    def fan_in(self) -> int:
        return self.dims[-1] if len(self.dims) == 2 else max(1, self.elements // self.dims[0])


def tensor_type(dims: tuple[int, ...], quant: int) -> int:
    """convert.py's rule: 1-D tensors are f32; a matrix whose rows are whole blocks is quantized;
    anything else (the 3x3 convolution kernels) is f16."""
    if len(dims) <= 1:
        return F32
    return quant if dims[-1] % BLOCK == 0 else F16


def official(arch: Architecture) -> list[tuple[str, tuple[int, ...], str]]:
    """Every tensor as (official checkpoint name, dims outermost first, init kind), in chatllm.cpp's file
    order. The one table of the architecture: each file format renames it (`rename`), none rebuilds it."""
    a, t = arch.audio, arch.text
    out: list[tuple[str, tuple[int, ...], str]] = []

    def add(name: str, dims: tuple[int, ...], init: str = "weight") -> None:
        out.append((name, dims, {1: "bias" if name.endswith(".bias") else "norm"}.get(len(dims), init)))

    c, at = a.downsample_hidden, "thinker.audio_tower."
    for i, cin in ((1, 1), (2, c), (3, c)):
        add(f"{at}conv2d{i}.bias", (c,))
        add(f"{at}conv2d{i}.weight", (c, cin, 3, 3))
    add(f"{at}conv_out.weight", (a.d_model, c * a.conv_freq))
    for i in range(a.layers):
        p = f"{at}layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            add(p + f"self_attn.{proj}.weight", (a.d_model, a.d_model))
            add(p + f"self_attn.{proj}.bias", (a.d_model,))
        for norm in ("self_attn_layer_norm", "final_layer_norm"):
            add(p + f"{norm}.weight", (a.d_model,))
            add(p + f"{norm}.bias", (a.d_model,))
        for fc, rows, cols in (("fc1", a.ffn, a.d_model), ("fc2", a.d_model, a.ffn)):
            add(p + f"{fc}.weight", (rows, cols))
            add(p + f"{fc}.bias", (rows,))
    for name, rows, cols in (("ln_post", a.d_model, 0), ("proj1", a.d_model, a.d_model), ("proj2", a.output_dim, a.d_model)):
        add(f"{at}{name}.weight", (rows, cols) if cols else (rows,))
        add(f"{at}{name}.bias", (rows,))
    h, q, kv = t.hidden, t.heads * t.head_dim, t.kv_heads * t.head_dim
    add("thinker.model.embed_tokens.weight", (t.vocab_size, h), "embedding")
    for i in range(t.layers):
        p = f"thinker.model.layers.{i}."
        for name, dims in (("input_layernorm", (h,)), ("post_attention_layernorm", (h,)), ("self_attn.q_proj", (q, h)),
                           ("self_attn.k_proj", (kv, h)), ("self_attn.v_proj", (kv, h)), ("self_attn.o_proj", (h, q)),
                           ("self_attn.q_norm", (t.head_dim,)), ("self_attn.k_norm", (t.head_dim,)),
                           ("mlp.gate_proj", (t.intermediate, h)), ("mlp.up_proj", (t.intermediate, h)),
                           ("mlp.down_proj", (h, t.intermediate))):
            add(p + name + ".weight", dims)  # type: ignore[arg-type]
    add("thinker.model.norm.weight", (h,))
    add("thinker.lm_head.weight", (arch.head_rows, h), "head")
    return out


def rename(name: str, rules: tuple[tuple[str, str], ...]) -> str:
    """An official name in a format's words: the first rule whose pattern matches rewrites it."""
    for pattern, replacement in rules:
        new, n = re.subn(pattern, replacement, name)
        if n:
            return new
    return name


_LAYER = r"^thinker\.audio_tower\.layers\.(\d+)\."
#: chatllm.cpp's converter (``convert.py: Qwen3ASRConverter``) names.
CHATLLM_NAMES = (
    (_LAYER + r"self_attn\.out_proj\.", r"audio.layers.\1.self_attn.o_proj."),
    (_LAYER + r"self_attn_layer_norm\.", r"audio.layers.\1.input_layernorm."),
    (_LAYER + r"final_layer_norm\.", r"audio.layers.\1.post_attention_layernorm."),
    (_LAYER + r"fc1\.", r"audio.layers.\1.mlp.fc0."),
    (_LAYER + r"fc2\.", r"audio.layers.\1.mlp.fc1."),
    (r"^thinker\.audio_tower\.(proj[12])\.", r"multi_modal_projector.\1."),
    (r"^thinker\.audio_tower\.", "audio."),
    (r"^thinker\.", ""),
)


def tensors(arch: Architecture, quant: int) -> list[TensorSpec]:
    """Every tensor of the model in file order, with chatllm.cpp's names."""
    return [TensorSpec(rename(name, CHATLLM_NAMES), dims, tensor_type(dims, quant), init) for name, dims, init in official(arch)]


def weight_bytes(arch: Architecture, quant: int) -> int:
    return sum(s.nbytes for s in tensors(arch, quant))


def parameter_count(arch: Architecture) -> int:
    return sum(s.elements for s in tensors(arch, Q8_0))
