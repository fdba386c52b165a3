"""Scale-out: ZeroMQ's own ROUTER/DEALER broker (``zmq.proxy``), no routing code of ours.

::

    clients (DEALER) --> [frontend ROUTER | broker | backend DEALER] <-- workers (`munet serve --connect`)

The frontend ROUTER prepends the client's routing id, the DEALER hands each request to the next
connected worker in turn, the worker's ROUTER prepends the broker's id, and replies retrace the path.
Workers need no change: they treat all frames before the empty delimiter as the envelope.

What round-robin means for clients: ``ping``/``info`` are answered by whichever worker gets them; a
worker whose queue is full answers ``busy`` even when another is idle (size ``--queue`` accordingly);
a ``cancel`` reaches the worker running the request only if it lands there, so a worker that does not
know the target answers ``cancel_ack`` with ``found: false`` and the client retries the cancel a few
times (``backend.client``); the request's own timeout ends the work in any case. A client that
vanishes is not noticed through the broker, so its queued requests still run.

Run: ``munet serve --bind tcp://0.0.0.0:5555 --broker tcp://0.0.0.0:5556 --curve-keys DIR`` (or
``python -m backend.broker --frontend ... --backend ...``), then on each GPU or machine
``munet serve --connect tcp://BROKER:5556 --curve-keys DIR`` (workers use the client key pair).
"""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import sys
import threading
from typing import Callable

import zmq

from . import protocol, transport

log = logging.getLogger(__name__)


class Broker:
    """A steerable ``zmq.proxy`` in a thread: ``start`` binds and returns (frontend, backend)
    endpoints, ``stop`` terminates the proxy and closes its sockets."""

    def __init__(self, frontend: str, backend: str, *, curve_keys: str | None = None, insecure: bool = False,
                 limits: protocol.Limits = protocol.DEFAULT_LIMITS):
        self.frontend, self.backend = frontend, backend
        self._keys = transport.load_keys(curve_keys, "server") if curve_keys else None
        transport.check_exposure([frontend, backend], self._keys, insecure)
        self._limits = limits
        self._ctx = transport.context()
        self._control_address = f"inproc://munet-broker-control-{id(self)}"
        self._control: zmq.Socket | None = None
        self._thread: threading.Thread | None = None
        self._auth: transport.Authenticator | None = None

    def start(self) -> tuple[str, str]:
        if self._keys is not None:
            self._auth = transport.Authenticator(self._keys)
        self._control = self._ctx.socket(zmq.PAIR)
        self._control.bind(self._control_address)
        bound: queue.Queue[tuple[str, str] | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._proxy, args=(bound,), name="munet-broker", daemon=True)
        self._thread.start()
        result = bound.get()
        if isinstance(result, BaseException):
            raise result
        return result

    def _proxy(self, bound: queue.Queue) -> None:
        front = self._ctx.socket(zmq.ROUTER)
        back = self._ctx.socket(zmq.DEALER)
        control = self._ctx.socket(zmq.PAIR)
        try:
            front.maxmsgsize = 2 * self._limits.max_image_bytes + (1 << 20)
            for sock in (front, back):
                sock.linger = 1000
                sock.sndhwm = sock.rcvhwm = 10_000
                if self._keys is not None:
                    transport.secure_server(sock, self._keys)
            control.connect(self._control_address)
            endpoints = transport.bind(front, self.frontend), transport.bind(back, self.backend)
        except BaseException as e:  # noqa: BLE001 - handed to start(), which raises it
            bound.put(e)
            for sock in (front, back, control):
                sock.close(linger=0)
            return
        bound.put(endpoints)
        try:
            zmq.proxy_steerable(front, back, None, control)
        except zmq.ContextTerminated:
            pass
        finally:
            for sock in (front, back, control):
                sock.close()

    def stop(self) -> None:
        if self._control is not None:
            self._control.send(b"TERMINATE")
            if self._thread is not None:
                self._thread.join(5.0)
            self._control.close()
            self._control = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


def _announce(line: str) -> None:
    print(line, flush=True)


def run(frontend: str, backend: str, *, curve_keys: str | None = None, insecure: bool = False,
        announce: Callable[[str], None] = _announce) -> None:
    """Run a broker until SIGINT or SIGTERM."""
    stop = threading.Event()
    broker = Broker(frontend, backend, curve_keys=curve_keys, insecure=insecure)
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        front, back = broker.start()
        announce(f"munet broker: clients connect to {front}, workers connect to {back}")
        log.info("broker running: frontend %s, backend %s", front, back)
        while not stop.wait(1.0):
            pass
        log.info("broker stopping")
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.broker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frontend", default="tcp://127.0.0.1:5555", help="endpoint clients connect to")
    parser.add_argument("--backend", default="tcp://127.0.0.1:5556", help="endpoint workers connect to")
    parser.add_argument("--curve-keys", metavar="DIR", help="CURVE key directory (`munet keys DIR`)")
    parser.add_argument("--insecure", action="store_true", help="allow non-loopback endpoints without CURVE")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(args.frontend, args.backend, curve_keys=args.curve_keys, insecure=args.insecure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
