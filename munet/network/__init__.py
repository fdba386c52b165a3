"""MuNet: the graph network (encoder, graph hierarchy, body stage with camera, clothed stage)."""

from munet.network.config import MuNetConfig
from munet.network.model import MuNet, MuNetOutput, parameter_count

__all__ = ["MuNet", "MuNetConfig", "MuNetOutput", "parameter_count"]
