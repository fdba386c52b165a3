"""The running request, its poll function, and the build on success (the glue between client and scene).

``poll()`` is the timer callback and is callable directly (``bpy.app.timers`` never fire in the bpy
module): it drains the socket, updates the panel's state, and on a result builds the character and
pushes one undo step (an undo step is pushed before the build too, so one undo removes it all).
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib

import bpy

from . import client, protocol, scene
from .errors import AddonError

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1


@dataclasses.dataclass
class Request:
    """Everything the Reconstruct operator gathered (plain data, no bpy objects but the image name)."""

    endpoint: str
    photo: bytes
    name: str
    photo_path: str  # file the photo came from ("" for a packed image)
    image_name: str  # a Blender image already loaded, or ""
    options: protocol.Options
    build: scene.BuildOptions
    timeout_s: float
    answer_timeout_s: float


@dataclasses.dataclass
class Running:
    request: Request
    job: client.ReconstructJob


class Jobs:
    """The one request in flight (class-level: timers have no other place to find it)."""

    current: Running | None = None


def state(context=None):
    return (context or bpy.context).window_manager.munet


def _report(level: str, message: str) -> None:
    log.log(logging.ERROR if level == "ERROR" else logging.INFO, message)
    try:
        bpy.ops.munet.report("EXEC_DEFAULT", level=level, message=message)
    except (RuntimeError, AttributeError):  # no window to report into
        pass


def start(request: Request, context=None) -> None:
    """Send the request (raises AddonError) and start polling."""
    if Jobs.current is not None:
        raise AddonError("a reconstruction is already running: cancel it first", code="busy")
    job = client.ReconstructJob(request.endpoint, request.photo, request.options, request.timeout_s,
                                request.answer_timeout_s)
    Jobs.current = Running(request, job)
    st = state(context)
    st.running, st.progress, st.stage, st.message = True, 0.0, "sending", f"Reconstructing {request.name}..."
    if not bpy.app.timers.is_registered(poll):
        bpy.app.timers.register(poll, first_interval=POLL_INTERVAL_S)


def cancel(context=None) -> None:
    running = Jobs.current
    if running is None:
        return
    running.job.cancel()
    _finish(running, context)


def poll(wait_s: float = 0.0) -> float | None:
    """Advance the running request; returns the next interval, or None when nothing runs.

    wait_s: wait at most this long for a message (the timer passes 0; a test driving the loop may
    wait for the socket instead of sleeping)."""
    running = Jobs.current
    if running is None:
        return None
    status = running.job.poll(wait_s)
    st = state()
    st.progress, st.stage = status.fraction, status.stage
    if not running.job.finished:
        return POLL_INTERVAL_S
    _finish(running)
    return None


def _photo_image(request: Request) -> bpy.types.Image | None:
    """The photo as a Blender image for the camera's background (None when no camera is made: nothing
    unused gets loaded), packed into the .blend so the file keeps working when the photo moves."""
    if not request.build.camera:
        return None
    if request.image_name and request.image_name in bpy.data.images:
        return bpy.data.images[request.image_name]
    if request.photo_path:
        try:
            image = bpy.data.images.load(request.photo_path, check_existing=True)
        except RuntimeError as e:
            log.warning("could not load %s as a Blender image: %s", request.photo_path, e)
            return None
        if image.packed_file is None:
            image.pack()
        return image
    return None


def _finish(running: Running, context=None) -> None:
    Jobs.current = None
    st = state(context)
    st.running = False
    status = running.job.status
    if status.state == "done":
        try:
            build(running.request, status.result, context)
        except AddonError as e:
            status.state, status.error = "failed", e
    if status.state != "done":
        error = status.error or AddonError("the reconstruction failed", code="internal")
        st.stage = "cancelled" if status.state == "cancelled" else "failed"
        st.message = str(error)
        st.progress = 0.0
        _report("WARNING" if status.state == "cancelled" else "ERROR", f"MuNet: {error}")


def build(request: Request, result: protocol.ResultReconstruction, context=None) -> scene.Built:
    """Build the character from a result inside one undo step; updates the panel state."""
    bpy.ops.ed.undo_push(message="Before MuNet reconstruction")
    photo = _photo_image(request)
    try:
        built = scene.build_character(result, request.name, request.build, photo=photo)
    except AddonError:
        if photo is not None and photo.users == 0 and not request.image_name:
            bpy.data.images.remove(photo)
        raise
    bpy.ops.ed.undo_push(message=f"MuNet: reconstruct {request.name}")
    st = state(context)
    st.stage, st.progress, st.last_build_s = "done", 1.0, built.seconds
    st.message = (f"Built {built.collection.name}: {len(result.skeleton.joint_names)} bones, "
                  f"{', '.join(o.name for o in built.meshes)} in {built.seconds * 1000:.0f} ms")
    _report("INFO", f"MuNet: {st.message}")
    return built


def request_name(photo_path: str, image_name: str) -> str:
    return pathlib.Path(photo_path).stem if photo_path else (pathlib.Path(image_name).stem or "MuNet")
