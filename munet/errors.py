"""The one exception family users of the model library see.

Every error a user can cause carries a stable ``code`` (the same strings travel on the wire, see
``backend/protocol/``) and a message that says what is wrong and what to do about it.
"""

from __future__ import annotations


class MunetError(Exception):
    """Base class: ``code`` is stable and machine-readable, ``str(err)`` is for people."""

    code = "internal"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class BadImageError(MunetError):
    """Not an image, a corrupt one, or one with zero pixels."""

    code = "bad_image"


class ImageTooLargeError(MunetError):
    """More pixels (or bytes) than the configured limit: refused before decoding."""

    code = "image_too_large"


class NoPersonFoundError(MunetError):
    """The detector found no person in the photo."""

    code = "no_person_found"


class SmplFilesMissingError(MunetError):
    """SMPL was asked for but its licensed model files are not where we looked."""

    code = "smpl_files_missing"


class BadOptionsError(MunetError):
    """An option value is out of range or unknown, or a combination of options the pipeline refuses.

    Its code is ``bad_request`` on purpose, not a ``bad_options`` of its own: on the wire the same fault
    caught earlier, by the protocol's own check of a request's options, is already ``bad_request``, so
    a client sees one code for "this request's options are wrong" whichever side caught it. The codes
    are a fixed list of protocol version 1 (``backend.protocol.ERROR_CODES``) that the add-on and
    ``munet``'s exit codes (2, like a bad command line) are built on; a new code would change both.
    """

    code = "bad_request"


class CheckpointError(MunetError):
    """A checkpoint is missing, corrupt or does not match the body model."""

    code = "bad_checkpoint"


class CancelledError(MunetError):
    """The caller cancelled the reconstruction (checked between stages)."""

    code = "cancelled"
