"""The two non-tensor blocks of a synthetic file: the JSON meta block and the binary config.

The meta block carries the Hugging Face configs the engine reads at load time (chatllm.cpp
``models/qwen.cpp`` and ``models/qwen_asr.cpp``, ``load_more``): ``config.json`` (the audio encoder's
shape under ``thinker_config.audio_config``, ``support_languages``, the aligner's
``timestamp_segment_time``), ``preprocessor_config.json`` (mel parameters) and
``tokenizer_config.json: added_tokens_decoder`` (special token ids by name). ``model_name`` (shown
in the engine's banner) ends in ``-SYNTHETIC``. Our own key ``qasr_synthetic`` marks the file as
random weights: the engine ignores unknown keys; `qasr.engine.modelfile` reads it.

The config block (chatllm.cpp's Qwen3 ``Config`` as its converter writes it): model type, file
version 1, ``BaseConfig`` (11 x i32), the Qwen3 fields (KV heads, head_dim, rope theta, no YaRN, no
experts, untied embeddings), 128 i32 "layer is sparse" flags, ``mrope_section`` padded to 4, and for
the aligner ``classify_num``.
"""

from __future__ import annotations

import struct

from qasr import __version__
from qasr.engine.modelfile import SYNTHETIC_META_KEY
from qasr.engine.synth.shapes import Architecture
from qasr.engine.synth.tokenizer import AUDIO_END, AUDIO_PAD, AUDIO_START, IM_END, TIMESTAMP, Vocabulary

MAX_LAYERS = 128
MROPE_SECTION_MAX = 4
MODEL_VERSION = 1

PREPROCESSOR = {
    "chunk_length": 30, "dither": 0.0, "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 128,
    "hop_length": 160, "n_fft": 400, "n_samples": 480000, "nb_max_frames": 3000, "padding_side": "right",
    "padding_value": 0.0, "processor_class": "Qwen3ASRProcessor", "return_attention_mask": True,
    "sampling_rate": 16000,
}


def display_name(arch: Architecture, dtype: str) -> str:
    return f"{arch.name}-{dtype}-SYNTHETIC"


def _hf_config(arch: Architecture) -> dict:
    a, t, base = arch.audio, arch.text, arch.base_vocab
    audio = {
        "model_type": "qwen3_asr_audio_encoder", "activation_function": "gelu", "d_model": a.d_model,
        "encoder_layers": a.layers, "num_hidden_layers": a.layers, "encoder_attention_heads": a.heads,
        "encoder_ffn_dim": a.ffn, "output_dim": a.output_dim, "downsample_hidden_size": a.downsample_hidden,
        "num_mel_bins": a.mel_bins, "max_source_positions": a.max_source_positions, "n_window": a.n_window,
        "n_window_infer": a.n_window_infer, "conv_chunksize": a.conv_chunksize, "scale_embedding": False,
    }
    text = {
        "model_type": "qwen3_asr_text", "hidden_size": t.hidden, "num_hidden_layers": t.layers,
        "num_attention_heads": t.heads, "num_key_value_heads": t.kv_heads, "head_dim": t.head_dim,
        "intermediate_size": t.intermediate, "vocab_size": t.vocab_size, "max_position_embeddings": t.max_position,
        "rope_theta": t.rope_theta, "rms_norm_eps": 1e-6, "hidden_act": "silu", "attention_bias": False,
        "tie_word_embeddings": False, "bos_token_id": base, "eos_token_id": base + IM_END,
        "rope_scaling": {"mrope_section": list(t.mrope_section), "interleaved": True, "mrope_interleaved": True,
                         "rope_type": "default"},
    }
    thinker = {
        "model_type": "qwen3_forced_aligner" if arch.classify_num else "qwen3_asr_thinker",
        "audio_config": audio, "text_config": text, "audio_start_token_id": base + AUDIO_START,
        "audio_end_token_id": base + AUDIO_END, "audio_token_id": base + AUDIO_PAD,
    }
    config = {"architectures": ["Qwen3ASRForConditionalGeneration"], "model_type": "qwen3_asr",
              "support_languages": list(arch.languages), "thinker_config": thinker}
    if arch.classify_num:
        thinker["classify_num"] = arch.classify_num
        config["timestamp_token_id"] = base + TIMESTAMP
        config["timestamp_segment_time"] = arch.timestamp_segment_ms
    return config


def meta(arch: Architecture, vocab: Vocabulary, dtype: str, seed: int, max_new_tokens_hint: str) -> dict:
    base = arch.base_vocab
    added = {str(base + i): {"content": tok, "special": True, "lstrip": False, "rstrip": False, "normalized": False,
                             "single_word": False} for i, tok in enumerate(vocab.specials)}
    return {
        "model_name": display_name(arch, dtype),
        SYNTHETIC_META_KEY: {
            "synthetic": True,
            "architecture": arch.name,
            "quantization": dtype,
            "seed": seed,
            "generator": f"qasr {__version__} (qasr models synth)",
            "note": "random weights with the published shapes: for speed and memory measurements only; "
                    "its output is meaningless",
            "decoding": max_new_tokens_hint,
        },
        "config.json": _hf_config(arch),
        "preprocessor_config.json": PREPROCESSOR,
        "tokenizer_config.json": {"added_tokens_decoder": added, "eos_token": "<|im_end|>",
                                  "pad_token": "<|endoftext|>", "tokenizer_class": "Qwen2Tokenizer"},
        "special_tokens_map.json": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    }


def config_block(arch: Architecture, quant: int) -> bytes:
    t, base = arch.text, arch.base_vocab
    if t.layers > MAX_LAYERS or len(t.mrope_section) > MROPE_SECTION_MAX:
        raise ValueError(f"{arch.name}: at most {MAX_LAYERS} layers and {MROPE_SECTION_MAX} mrope sections")
    out = struct.pack("<ii", arch.model_type, MODEL_VERSION)
    out += struct.pack("<11i", quant, t.vocab_size, t.hidden, t.heads, t.layers, t.intermediate, t.max_position,
                       base, base + IM_END, -1, -1)
    out += struct.pack("<iiffiiiiiii", t.kv_heads, t.head_dim, t.rope_theta, -1.0, -1, 1, -1, -1, -1, 0, 0)
    out += struct.pack(f"<{MAX_LAYERS}i", *([0] * MAX_LAYERS))
    mrope = list(t.mrope_section) + [0] * (MROPE_SECTION_MAX - len(t.mrope_section))
    out += struct.pack(f"<{MROPE_SECTION_MAX}i", *mrope)
    if arch.classify_num:
        out += struct.pack("<i", arch.classify_num)
    return out

