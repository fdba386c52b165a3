"""MuNet Reconstruct: a rigged, clothed 3D person from one photo, reconstructed by a MuNet backend.

Modules: ``protocol`` (the wire format, copied from the backend at build time), ``client`` (the
non-blocking socket), ``scene`` (building the character), ``jobs`` (the poll function gluing them),
``kinematics`` and ``motion`` (rig and motion maths, numpy only), ``animate`` (motions onto the character),
``export`` (FBX/GLB for other tools), ``operators``, ``ui``, ``props`` (settings, state, preferences),
``local_backend``.
"""

from . import jobs, local_backend, operators, props, ui

_MODULES = (props, operators, ui)


def register():
    for module in _MODULES:
        module.register()


def unregister():
    jobs.cancel()
    local_backend.LOCAL.stop()
    for module in reversed(_MODULES):
        module.unregister()
