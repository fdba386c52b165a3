"""The add-on's one exception type: every failure a user can meet becomes an ``AddonError``."""

from __future__ import annotations

#: The one command that makes a backend's Python environment (README: Run the backend on a server).
INSTALL_COMMAND = "`scripts/install_backend.sh VENV_DIR` in the MuNet repository"

#: What to do about each error code (shown after the backend's own message).
HINTS = {
    "unreachable": "start the backend (`munet serve --bind {endpoint}`, or Preferences > Start local backend) "
                   "or fix the endpoint",
    "bad_image": "choose a JPEG or PNG photo",
    "image_too_large": "downscale the photo",
    "no_person_found": "use a photo with one clearly visible person",
    "smpl_files_missing": "start the backend with --smpl-dir pointing at your SMPL files, or choose Anny",
    "bad_checkpoint": "reinstall the backend or pass it a valid --checkpoint",
    "bad_request": "update the add-on and the backend to the same version",
    "unsupported_version": "update the add-on and the backend to the same version",
    "busy": "the backend is busy: try again in a moment",
    "timeout": "raise the timeout in the add-on's preferences",
    "shutting_down": "the backend is stopping: start it again",
    "internal": "the backend log says more",
    "no_python": f"point the preference at an environment made by {INSTALL_COMMAND}",
}


class AddonError(Exception):
    """A failure to show the user. code: a protocol error code (or ``unreachable``, ``cancelled``,
    ``no_photo``, ``build``); message: one sentence for people."""

    def __init__(self, message: str, code: str = "internal", endpoint: str = ""):
        hint = HINTS.get(code, "")
        if hint:
            message = f"{message.rstrip('.')}: {hint.format(endpoint=endpoint or 'tcp://127.0.0.1:5555')}"
        super().__init__(message)
        self.code = code
