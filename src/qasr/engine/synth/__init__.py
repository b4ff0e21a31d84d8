"""Synthetic models: random weights with the published shapes, in chatllm.cpp's file format.

`shapes` holds the architectures and the tensor table, `tokenizer` the synthetic byte-level BPE,
`meta` the JSON meta and config blocks, `writer` streams a file to disk. For speed and memory
measurements at real sizes; a synthetic model's output is meaningless.
"""

from qasr.engine.synth.shapes import BY_SIZE, QWEN3_ALIGNER_06B, QWEN3_ASR_06B, QWEN3_ASR_17B, TINY_ALIGNER, TINY_ASR, Architecture
from qasr.engine.synth.writer import SynthResult, write_model

__all__ = ["BY_SIZE", "QWEN3_ALIGNER_06B", "QWEN3_ASR_06B", "QWEN3_ASR_17B", "TINY_ALIGNER", "TINY_ASR", "Architecture",
           "SynthResult", "write_model"]
