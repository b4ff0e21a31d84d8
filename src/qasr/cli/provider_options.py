"""The ``--provider`` and ``--whisper-model`` options, declared once for every command that takes them."""

from __future__ import annotations

import typer

PROVIDER = typer.Option(
    "qwen3-chatllm", "--provider", envvar="QASR_PROVIDER",
    help="Recogniser: qwen3-chatllm, crispasr (Qwen3-ASR on CrispASR, GGUF models: pip install 'qasr[crispasr]'), "
         "faster-whisper (pip install 'qasr[whisper]'), or auto (the first that starts, in $QASR_PROVIDER_ORDER or "
         "qwen3-chatllm,crispasr,faster-whisper; auto:NAME,NAME for another order).",
)  # fmt: skip
WHISPER_MODEL = typer.Option(
    None, "--whisper-model", envvar="QASR_WHISPER_MODEL",
    help="faster-whisper model: a CTranslate2 Whisper directory, or a name it downloads (small, large-v3...).",
)  # fmt: skip
