"""ZeroMQ plumbing shared by the server, the broker and the client: it only moves bytes.

* One ``zmq.Context`` per process (``context()``).
* Endpoints: ``tcp://HOST:0`` means "any free port" (ZeroMQ spells it ``*``); ``is_loopback`` decides
  whether a bind or connect stays on this machine (loopback TCP, ``ipc://``, ``inproc://``).
* CURVE keys: ``make_keys(DIR)`` writes the layout below (``munet keys DIR``), ``load_keys`` reads it::

      DIR/server.key            server public key   (give it to clients and workers)
      DIR/server.key_secret     server secret key   (server and broker only)
      DIR/client.key            client public key
      DIR/client.key_secret     client secret key   (clients and broker workers)
      DIR/authorized_clients/   public keys the server accepts (client.key to start with)

* Socket errors surface as ``TransportError`` (code ``unreachable``) raised ``from`` the zmq error.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import pathlib
import shutil
import threading
from urllib.parse import urlsplit

import zmq

from munet.errors import MunetError

log = logging.getLogger(__name__)

_CONTEXT_LOCK = threading.Lock()


class TransportError(MunetError):
    """A socket could not be set up or used: the backend cannot be reached."""

    code = "unreachable"


def context() -> zmq.Context:
    """The process's one ZeroMQ context."""
    with _CONTEXT_LOCK:
        return zmq.Context.instance()


def envelope_of(frames: list) -> tuple[bytes, ...]:
    """The routing envelope of a ROUTER-side message: its frames up to the empty delimiter (frames or bytes)."""
    out = []
    for frame in frames:
        data = frame.bytes if isinstance(frame, zmq.Frame) else bytes(frame)
        if not data:
            break
        out.append(data)
    return tuple(out)


def drain(sock: zmq.Socket, handle, stats: dict, logger: logging.Logger, batch: int = 256) -> None:
    """Handle up to ``batch`` waiting messages of ``sock`` (so one socket cannot starve another), each with
    ``handle(frames)``; a message whose handling raises is counted in ``stats["internal_errors"]`` and
    logged, and the loop goes on (one bad message must not stop a server or a broker)."""
    for _ in range(batch):
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return
        try:
            handle(frames)
        except Exception:  # noqa: BLE001 - see the docstring
            stats["internal_errors"] += 1
            logger.exception("unexpected error while handling a message")


def bind_endpoint(endpoint: str) -> str:
    """``tcp://HOST:0`` -> ``tcp://HOST:*`` (ZeroMQ's "pick a free port"); others unchanged."""
    if endpoint.startswith("tcp://") and endpoint.endswith(":0"):
        return endpoint[:-2] + ":*"
    return endpoint


def is_loopback(endpoint: str) -> bool:
    """True for endpoints that cannot be reached from another machine."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host = urlsplit(endpoint.replace(":*", ":0")).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a DNS name: assume it is reachable from outside


@dataclasses.dataclass(frozen=True)
class CurveKeys:
    """Key material read from a key directory. ``secret_key``/``public_key`` are this side's pair;
    ``server_key`` the server's public key (clients); ``authorized_dir`` the accepted client keys
    (servers)."""

    directory: pathlib.Path
    public_key: bytes
    secret_key: bytes
    server_key: bytes
    authorized_dir: pathlib.Path


def make_keys(directory: str | os.PathLike, *, force: bool = False) -> list[pathlib.Path]:
    """Write a server and a client key pair into ``directory`` (see the module docstring).

    The directory is made (or tightened to) mode 0700; each secret key file is created with mode 0600
    under a temporary name and renamed into place, so it is never readable by others, not even briefly,
    and never half-written."""
    root = pathlib.Path(directory)
    secrets = [root / "server.key_secret", root / "client.key_secret"]
    if not force and any(p.exists() for p in secrets):
        raise MunetError(f"{root} already holds keys: pass --force to replace them", code="bad_request")
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if root.stat().st_mode & 0o077:
        os.chmod(root, 0o700)
        log.warning("%s was readable by others: set to mode 700 (it holds secret keys)", root)
    authorized = root / "authorized_clients"
    authorized.mkdir(mode=0o700, exist_ok=True)
    written = []
    for name in ("server", "client"):
        public, secret = zmq.curve_keypair()
        written.append(_write_key_file(root / f"{name}.key", public, None))
        written.append(_write_key_file(root / f"{name}.key_secret", public, secret))
    shutil.copy(root / "client.key", authorized / "client.key")
    written.append(authorized / "client.key")
    return written


def _write_key_file(path: pathlib.Path, public: bytes, secret: bytes | None) -> pathlib.Path:
    """One key file in ZeroMQ's certificate format (``zmq.auth.load_certificate`` reads it), written
    atomically; mode 0600 for a secret key, 0644 for a public one."""
    kind = "Secret" if secret else "Public"
    lines = ["#   ****  Generated by munet keys  ****", f"#   ZeroMQ CURVE **{kind}** Certificate",
             "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions." if secret else
             "#   Exchange securely, or use a secure mechanism to verify the contents", "", "metadata", "curve",
             f'    public-key = "{public.decode()}"']
    if secret:
        lines.append(f'    secret-key = "{secret.decode()}"')
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_keys(directory: str | os.PathLike, role: str) -> CurveKeys:
    """Read the keys ``role`` ("server" or "client") needs from ``directory``."""
    import zmq.auth

    root = pathlib.Path(directory)
    own = root / f"{role}.key_secret"
    try:
        public, secret = zmq.auth.load_certificate(own)
        server_public, _ = zmq.auth.load_certificate(root / "server.key")
    except (OSError, ValueError) as e:
        raise MunetError(f"cannot read CURVE keys in {root} ({e}): make them with `munet keys {root}`", code="bad_request") from e
    if secret is None:
        raise MunetError(f"{own} holds no secret key: make keys with `munet keys {root}`", code="bad_request")
    return CurveKeys(root, public, secret, server_public, root / "authorized_clients")


class Authenticator:
    """ZeroMQ's ZAP handler for this process's context: accepts CURVE clients whose public key is in
    ``keys.authorized_dir``. Start it before binding a CURVE server socket.

    The directory is re-read when it changes (checked every ``RELOAD_S``): a key added there is accepted,
    a key removed is refused, from the next connection on, without a restart (connections already made
    stay until they close)."""

    RELOAD_S = 1.0

    def __init__(self, keys: CurveKeys):
        from zmq.auth.thread import ThreadAuthenticator

        if not keys.authorized_dir.is_dir():
            raise MunetError(f"{keys.authorized_dir} is missing: put the accepted client public keys there", code="bad_request")
        self._dir = keys.authorized_dir
        self._auth = ThreadAuthenticator(context(), log=logging.getLogger(__name__ + ".auth"))
        self._auth.start()
        self._seen = self._signature()
        self._auth.configure_curve(domain="*", location=str(self._dir))
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="munet-keys-reload", daemon=True)
        self._watcher.start()

    def _signature(self) -> tuple:
        """What identifies the directory's content: every file's name, size and modification time."""
        try:
            return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in self._dir.iterdir()))
        except OSError:
            return ()

    def _watch(self) -> None:
        while not self._stop.wait(self.RELOAD_S):
            signature = self._signature()
            if signature != self._seen:
                self._seen = signature
                self._auth.configure_curve(domain="*", location=str(self._dir))  # replaces the key set at once
                log.info("authorized client keys reloaded from %s (%d file(s))", self._dir, len(signature))

    def stop(self) -> None:
        self._stop.set()
        self._watcher.join(2.0)
        self._auth.stop()


def secure_server(sock: zmq.Socket, keys: CurveKeys) -> None:
    sock.curve_secretkey = keys.secret_key
    sock.curve_publickey = keys.public_key
    sock.curve_server = True


def secure_client(sock: zmq.Socket, keys: CurveKeys) -> None:
    sock.curve_secretkey = keys.secret_key
    sock.curve_publickey = keys.public_key
    sock.curve_serverkey = keys.server_key


def check_exposure(endpoints: list[str], keys: CurveKeys | None, insecure: bool) -> None:
    """Refuse to expose an endpoint beyond loopback without CURVE, unless ``insecure`` (then warn)."""
    exposed = [e for e in endpoints if not is_loopback(e)]
    if not exposed or keys is not None:
        return
    if not insecure:
        raise MunetError(
            f"{', '.join(exposed)} is reachable from other machines: pass --curve-keys DIR (make keys with "
            "`munet keys DIR`) or, on a trusted network only, --insecure", code="bad_request")
    warning = f"WARNING: {', '.join(exposed)} is open to the network WITHOUT authentication or encryption (--insecure)"
    print(warning, flush=True)
    log.warning(warning)


def bind(sock: zmq.Socket, endpoint: str) -> str:
    """Bind and return the endpoint actually bound (the real port when asked for port 0)."""
    try:
        sock.bind(bind_endpoint(endpoint))
    except zmq.ZMQError as e:
        raise TransportError(f"cannot bind {endpoint}: {e}") from e
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def connect(sock: zmq.Socket, endpoint: str) -> None:
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as e:
        raise TransportError(f"cannot connect to {endpoint}: {e}") from e
