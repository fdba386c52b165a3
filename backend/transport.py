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
    """Write a server and a client key pair into ``directory`` (see the module docstring)."""
    import zmq.auth

    root = pathlib.Path(directory)
    secrets = [root / "server.key_secret", root / "client.key_secret"]
    if not force and any(p.exists() for p in secrets):
        raise MunetError(f"{root} already holds keys: pass --force to replace them", code="bad_request")
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("server", "client"):
        public, secret = zmq.auth.create_certificates(root, name)
        os.chmod(secret, 0o600)
        written += [pathlib.Path(public), pathlib.Path(secret)]
    authorized = root / "authorized_clients"
    authorized.mkdir(exist_ok=True)
    shutil.copy(root / "client.key", authorized / "client.key")
    written.append(authorized / "client.key")
    return written


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
    ``keys.authorized_dir``. Start it before binding a CURVE server socket."""

    def __init__(self, keys: CurveKeys):
        from zmq.auth.thread import ThreadAuthenticator

        if not keys.authorized_dir.is_dir():
            raise MunetError(f"{keys.authorized_dir} is missing: put the accepted client public keys there", code="bad_request")
        self._auth = ThreadAuthenticator(context(), log=logging.getLogger(f"{__name__}.auth"))
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(keys.authorized_dir))

    def stop(self) -> None:
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
