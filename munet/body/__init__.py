"""Body models behind one interface: Anny (default, free) and SMPL (the user's licensed files)."""

from munet.body.base import BodyModel, BodyOutput
from munet.body.skeleton import SMPL24_JOINTS, SMPL24_PARENTS


def load_body_model(name: str = "anny", skeleton: str = "smpl24", smpl_dir: str | None = None) -> BodyModel:
    """The factory: ``"anny"`` (smpl24 or full skeleton) or ``"smpl"`` (smpl24, from ``smpl_dir`` or
    ``$MUNET_SMPL_DIR``)."""
    if name == "anny":
        from munet.body.anny_model import AnnyBody

        return AnnyBody(skeleton=skeleton)
    if name == "smpl":
        from munet.body.smpl_model import SmplBody

        if skeleton != "smpl24":
            raise ValueError("SMPL has only the smpl24 skeleton")
        return SmplBody(smpl_dir=smpl_dir)
    raise ValueError(f"unknown body model {name!r}: choose 'anny' or 'smpl'")


__all__ = ["BodyModel", "BodyOutput", "SMPL24_JOINTS", "SMPL24_PARENTS", "load_body_model"]
