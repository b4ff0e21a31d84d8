"""Our ctypes binding to chatllm.cpp's libchatllm: library discovery, model files, `Model`."""

from qasr.engine.library import Engine, load_library
from qasr.engine.model import Model, ModelInfo
from qasr.engine.modelfile import ModelFileInfo, ModelKind, inspect_model_file

__all__ = ["Engine", "Model", "ModelFileInfo", "ModelInfo", "ModelKind", "inspect_model_file", "load_library"]
