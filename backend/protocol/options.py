"""The reconstruction options a client may choose, checked like every other field."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from .fields import check_bool, check_int, check_keys, check_str


@dataclasses.dataclass(frozen=True)
class Options:
    """Reconstruction options a client may choose (the same names, defaults and choices as
    ``munet.reconstruction.ReconstructOptions``; the device, the checkpoint and SMPL's directory are
    the server's settings, never a client's)."""

    body_model: str = "anny"
    skeleton: str = "smpl24"
    clothed: bool = True
    method: str = "network"
    refine_iterations: int = 40
    texture: bool = True

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "body_model": ("anny", "smpl"),
        "skeleton": ("smpl24", "full"),
        "method": ("network", "fitting"),
    }
    MAX_REFINE_ITERATIONS: ClassVar[int] = 1000

    def to_wire(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_wire(cls, value: Any, where: str = "options") -> "Options":
        names = tuple(f.name for f in dataclasses.fields(cls))
        check_keys(value, where, (), names)
        for name, choices in cls.CHOICES.items():
            if name in value:
                check_str(value[name], f"{where}.{name}", choices=choices)
        for name in ("clothed", "texture"):
            if name in value:
                check_bool(value[name], f"{where}.{name}")
        if "refine_iterations" in value:
            check_int(value["refine_iterations"], f"{where}.refine_iterations", 0, cls.MAX_REFINE_ITERATIONS)
        return cls(**value)

    def validate(self) -> "Options":
        """Raise ProtocolError when a field is out of range (for options built in code)."""
        return Options.from_wire(self.to_wire())
