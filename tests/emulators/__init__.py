"""Loopback emulators of the image-to-3D vendors' HTTP APIs (see server.py for the control API)."""

from .hunyuan3d import Hunyuan3DEmulator
from .modelslab import ModelsLabEmulator
from .goneural import GoNeuralEmulator
from .pixazo import PixazoEmulator
from .runware import RunwareEmulator
from .scenario import ScenarioEmulator
from .server import Emulator, LoopbackServer, Reply, Request, json_reply

__all__ = [
    "Emulator", "Hunyuan3DEmulator", "LoopbackServer", "ModelsLabEmulator", "GoNeuralEmulator", "PixazoEmulator",
    "Reply", "Request", "RunwareEmulator", "ScenarioEmulator", "json_reply",
]
