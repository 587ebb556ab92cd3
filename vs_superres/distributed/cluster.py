"""Ray: finding it, joining or starting an instance, and placing one worker per slot.

Ray is an optional extra; every import of it goes through :func:`import_ray`, whose error says
how to install it. An address is parsed and probed before Ray is asked to join it (a closed port,
a web server, a silent service are refused in seconds, where Ray itself retries for minutes or
for ever), and the join gets a deadline; a local instance is sized by the machine (cores and
memory) before it starts. Ray's signal handlers and start-up notices are kept out of the host's
way (see ``docs/distributed.md``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import threading
import time
from typing import Any, Iterator

from vs_superres.contracts.errors import InvalidOption, SuperResError, WeightsError, option_ref
from vs_superres.hostkit.signals import Terminated
from vs_superres.media.budget import available_memory_bytes

INSTALL_HINT = "pip install vs-superres[ray]"
#: one CPU worker before its first segment: a Ray worker process with torch and vs_superres
#: imported and a small model (DITN) loaded. Measured on Linux, torch 2.13 (CPU), Ray 2.60:
#: PSS 0.29 GB (USS 0.26 GB, RSS 0.47 GB, the rest torch's libraries shared between workers)
WORKER_PROCESS_BYTES = 300 * 10**6
#: a local instance's own processes (GCS, raylet, the dashboard and runtime-env agents):
#: measured PSS 0.16 GB
RAY_PROCESSES_BYTES = 200 * 10**6
#: the smallest object store a local instance is given (Ray's own minimum is 75 MiB)
STORE_MINIMUM_BYTES = 128 << 20


def import_ray():
    """The ``ray`` module, or a :class:`SuperResError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise SuperResError(
            "distributed runs (--ray, --workers; vs_superres.distributed) need Ray, which is not "
            f"installed here; install it with `{INSTALL_HINT}` (on every node of the cluster), "
            "or run without --ray/--workers on this machine alone") from None
    return ray


#: the forms ``--ray``/``address=`` accepts, for messages
ADDRESS_FORMS = ("auto (the cluster this node belongs to), HOST:PORT (the head node's address that "
                 "`ray start --head` prints, port 6379 by default) or ray://HOST:PORT (Ray Client, port 10001 "
                 "by default)")
#: seconds a connection attempt (TCP, then the protocol check) may take
PROBE_TIMEOUT = 5.0
#: seconds ``ray.init`` may take to join a cluster that answered the probe, before the run is
#: refused (Ray alone retries for minutes, or for ever)
INIT_TIMEOUT = 120.0
#: HTTP/2's client preface and an empty SETTINGS frame: Ray's GCS and Ray Client servers are
#: gRPC, so they answer with a SETTINGS frame of their own (RFC 9113, 3.4)
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
#: the signals whose handlers Ray replaces on ``ray.init`` (Python's and a C++ crash reporter)
_HANDLED_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, n))
GB = 1e9


def parse_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT``; None for ``auto``. Anything else
    is refused with the accepted forms (Ray would call it a ``ValueError``)."""
    text = address.strip() if isinstance(address, str) else address
    if text == "auto":
        return None
    if not isinstance(text, str) or not text:
        raise InvalidOption(f"{option_ref('address', address)} is not a Ray address; give {ADDRESS_FORMS}", option="ray")
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    host, colon, port = rest.rpartition(":")
    host = host.strip("[]")
    if scheme not in ("", "ray") or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536 \
            or any(c.isspace() or c in "/?#@" for c in host):
        raise InvalidOption(f"{option_ref('address', address)} is not a Ray address; give {ADDRESS_FORMS}", option="ray")
    return host, int(port)


def _refused(address: str, found: str) -> SuperResError:
    return SuperResError(
        f"cannot join the Ray cluster at {address!r}: {found}; start one there with `ray start --head` "
        "(it prints the address to join: HOST:6379, or ray://HOST:10001 for Ray Client), check the host "
        "and port (and the firewall), or use --ray auto on a node of a running cluster", option="ray")


def probe(address: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Refuse, within about ``timeout`` seconds, an address where nothing listens or where the
    service does not speak gRPC (Ray's protocol): a web server, a database, a silent port.
    ``auto`` is not probed (Ray finds the cluster itself, and says so at once when there is
    none); with ``RAY_USE_TLS`` set only the TCP connection is checked."""
    target = parse_address(address)
    if target is None:
        return
    try:
        conn = socket.create_connection(target, timeout=timeout)
    except socket.timeout:
        raise _refused(address, f"no answer to a TCP connection within {timeout:.0f} s") from None
    except OSError as exc:
        raise _refused(address, exc.strerror or str(exc) or type(exc).__name__) from None
    with conn:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return
        deadline = time.monotonic() + timeout
        got = b""
        try:
            conn.sendall(_HTTP2_PREFACE)
            while len(got) < 9 and time.monotonic() < deadline:
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = conn.recv(64)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
        except OSError as exc:
            if not got:
                raise _refused(address, f"the service there dropped the connection ({exc.strerror or exc}); "
                                        "it is not a Ray cluster") from None
    if len(got) >= 9 and got[3] == 0x04:
        return  # an HTTP/2 SETTINGS frame: a gRPC server, as Ray's are
    head = got.lstrip().lower()
    if head.startswith(b"http/"):
        status = got.split(b"\r\n", 1)[0].decode("ascii", "replace")
        found = f"a web server answered ({status!r}), not a Ray cluster"
    elif head.startswith((b"<!doctype html", b"<html")):
        found = "a web server answered (an HTML page), not a Ray cluster"
    elif got:
        found = f"a service that is not a Ray cluster answered ({got[:32]!r})"
    elif time.monotonic() >= deadline:
        found = f"a service accepted the connection but did not answer in Ray's protocol within {timeout:.0f} s"
    else:
        found = "the service there closed the connection without answering in Ray's protocol"
    raise _refused(address, found)


@dataclasses.dataclass(frozen=True)
class LocalInstance:
    """A local Ray instance for ``workers`` CPU workers of ``threads`` threads each, with an
    object store of ``store_bytes``; ``worker_bytes`` is one worker's estimated memory."""

    workers: int
    threads: int
    worker_bytes: int
    store_bytes: int = 256 << 20

    def needed_bytes(self, workers: int | None = None) -> int:
        count = self.workers if workers is None else workers
        return RAY_PROCESSES_BYTES + self.store_bytes + count * self.worker_bytes

    def check(self, cores: int | None = None, available: int | None = None) -> None:
        """Refuse, before Ray starts, more workers than this machine's cores or memory hold."""
        cores = cores or machine_cores()
        if available is None:
            available = available_memory_bytes()
        by_cores = cores // self.threads
        by_memory = self.workers if available is None else max(0, min(
            self.workers, (available - RAY_PROCESSES_BYTES - self.store_bytes) // max(1, self.worker_bytes)))
        fit = min(by_cores, by_memory)
        if self.workers <= fit:
            return
        memory = "unknown" if available is None else f"{available / GB:.1f} GB"
        asks = (f"{option_ref('workers', self.workers)} of {self.threads} thread(s) each asks a local Ray "
                f"instance for {self.workers * self.threads} CPU cores and about {self.needed_bytes() / GB:.1f} GB of "
                f"memory ({self.worker_bytes / GB:.2f} GB per worker, {(RAY_PROCESSES_BYTES + self.store_bytes) / GB:.2f} GB "
                f"for Ray itself and its object store)")
        machine = f"this machine has {cores} CPU cores and {memory} of memory available"
        if fit >= 1:
            advice = f"at most {fit} worker{'s' if fit > 1 else ''} fit here: ask for {option_ref('workers', fit)} or fewer"
        else:
            advice = "not one worker fits here: free memory, or give each worker fewer threads"
        raise InvalidOption(
            f"{asks}, but {machine}; {advice}, or run on a Ray cluster with more machines (`ray start --head` on "
            "one, `ray start --address=HEAD:6379` on the others, then --ray HEAD:6379 (address= in Python), or "
            "--ray auto on one of its nodes)", option="workers")


def machine_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextlib.contextmanager
def _quiet_ray(local: bool) -> Iterator[None]:
    """Ray's own start-up notices (token authentication, usage statistics, the SIGTERM-handler
    warning) off the user's stderr: its loggers are raised to ERROR while it starts (its
    notices stay in the debug log when a handler for ``vs_superres`` debugging is set up by
    ``--debug``), and a local instance started here sends no usage statistics. Set only for
    the ``ray.init`` call and its children; nothing is changed at import."""
    ray_logger = logging.getLogger("ray")
    level = ray_logger.level
    ray_logger.setLevel(logging.ERROR)
    env = {"RAY_USAGE_STATS_ENABLED": "0"} if local else {}
    saved = {k: os.environ.get(k) for k in env}
    for key, value in env.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        ray_logger.setLevel(level)
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)


def _handlers() -> dict[int, Any]:
    """The handlers of :data:`_HANDLED_SIGNALS` now (empty outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.getsignal(s) for s in _HANDLED_SIGNALS}


def _reinstall(saved: dict[int, Any], received: list[int] | None = None) -> None:
    """Put back the ``saved`` handlers, which Ray replaces on ``ray.init`` (a Python handler
    that exits with status 1, and a C++ one that prints a crash dump) and would otherwise
    bypass the host kit's policy (exit 143, one line, the output removed). With ``received``,
    SIGTERM and SIGHUP are first noted there: Ray turns any exception a handler raises during
    its blocking calls into a plain ``KeyboardInterrupt``, and :func:`connected` gives it
    back its signal."""
    for signum, handler in saved.items():
        if received is not None and signum != signal.SIGINT and callable(handler):
            def noted(num, frame, handler=handler):
                received.append(num)
                handler(num, frame)
            signal.signal(signum, noted)
        else:
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _init_with_deadline(ray, timeout: float, where: str, **kwargs) -> None:
    """``ray.init(**kwargs)`` joining a cluster, refused after ``timeout`` seconds (``where``
    names the target). It runs in a thread of its own, which a refused attempt leaves behind
    (a daemon: it does not keep the process alive). Never for a local instance: the processes
    Ray starts die with the thread that started them."""
    if threading.current_thread() is not threading.main_thread() or timeout <= 0:
        ray.init(**kwargs)
        return
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            ray.init(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc
        outcome["done"] = True

    thread = threading.Thread(target=target, name="superres-ray-init", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise SuperResError(
            f"{where} did not answer within {timeout:.0f} s; check it with `ray status` there (a gRPC "
            "service that is not Ray, a cluster that is starting or overloaded)", option="ray")
    if "error" in outcome:
        raise outcome["error"]


@contextlib.contextmanager
def connected(address: str | None, local: LocalInstance | None = None, *,
              init_timeout: float = INIT_TIMEOUT) -> Iterator[Any]:
    """Ray, joined to ``address`` or to a local instance sized by ``local`` started here
    (and stopped on exit). A process already connected (``ray.init`` done by the caller) keeps
    its connection, whatever ``address`` says.

    ``address`` is probed first (:func:`probe`), a local instance checked against the
    machine (:meth:`LocalInstance.check`); joining gets ``init_timeout`` seconds. The
    process's signal handlers are kept (:func:`_reinstall`)."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    local = local or LocalInstance(1, 1, WORKER_PROCESS_BYTES)
    if address is not None:
        probe(address)
    else:
        local.check()
    saved = _handlers()
    received: list[int] = []
    try:
        with _quiet_ray(address is None):
            try:
                if address is None:
                    # "local": a new instance, never one `ray start` or another process left running
                    # (ray.init() without an address joins the one named in /tmp/ray/ray_current_cluster).
                    # In this thread: Ray ties the processes it starts to the life of the thread that
                    # started them (they are killed when it ends). Ray's own start-up has deadlines.
                    ray.init(address="local", num_cpus=local.workers * local.threads,
                             object_store_memory=local.store_bytes, include_dashboard=False,
                             log_to_driver=False, configure_logging=False)
                else:
                    _init_with_deadline(ray, init_timeout, f"the Ray cluster at {address!r}", address=address,
                                        log_to_driver=False, configure_logging=False)
            finally:
                _reinstall(saved, received)
    except ConnectionError as exc:
        raise SuperResError(
            f"cannot join the Ray cluster at {address!r}: {exc}; start one with `ray start --head`, or "
            "give its address (--ray HOST:6379)", option="ray") from None
    try:
        yield ray
    except KeyboardInterrupt as exc:
        if received and not isinstance(exc, Terminated):
            raise Terminated(received[0]) from None
        raise
    finally:
        try:
            ray.shutdown()
        finally:
            _reinstall(saved)


def worker_slots(ray, device: str, workers: int | None, threads: int) -> tuple[int, dict]:
    """How many workers, and each one's Ray resources: a GPU each on a cluster with GPUs (unless
    ``device`` is ``cpu``), else ``threads`` CPUs each. Refuses more workers than fit."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    use_gpu = device != "cpu" and (gpus > 0 or device.startswith("cuda"))
    if use_gpu:
        if gpus == 0:
            raise InvalidOption(f"{option_ref('device', device)} asks for GPUs, but the Ray cluster has none; "
                                "add GPU nodes or use device=cpu", option="device")
        count, need, kind = workers or gpus, {"num_gpus": 1}, "GPUs"
        have = gpus
    else:
        count, need, kind = workers or max(1, cpus // threads), {"num_cpus": threads}, "CPUs"
        have = cpus // threads
    if count < 1:
        raise InvalidOption(f"{option_ref('workers', count)} must be >= 1", option="workers")
    if count > have:
        raise InvalidOption(
            f"{option_ref('workers', count)} asks for {count} workers, but the Ray cluster has room for "
            f"{have} ({gpus} GPUs, {cpus} CPUs, {'1 GPU' if use_gpu else f'{threads} CPU(s)'} each); "
            f"ask for at most {have}, or add nodes with more {kind}", option="workers")
    return count, need


def start_workers(ray, count: int, need: dict, model: str, options: dict, threads: int | None,
                  retries: int, timeout: float) -> tuple[list, list[dict]]:
    """``count`` :class:`~.worker.SegmentWorker` actors, spread over the nodes, each with its
    model loaded; their :meth:`~.worker.SegmentWorker.describe`. A worker whose model does
    not load fails the run with the node's name and the reason (the missing file)."""
    from vs_superres.distributed.worker import SegmentWorker

    remote = ray.remote(SegmentWorker).options(
        **need, max_restarts=retries, max_task_retries=retries, scheduling_strategy="SPREAD")
    actors = [remote.remote(model, options, threads) for _ in range(count)]
    try:
        infos = ray.get([a.describe.remote() for a in actors], timeout=timeout)
    except ray.exceptions.GetTimeoutError:
        raise SuperResError(
            f"the Ray cluster did not start {count} workers within {timeout:.0f} s; check that its nodes "
            "are up (`ray status`) and have the resources asked for") from None
    for info in infos:
        if info["error"] is not None:
            kind, message = info["error"]
            cls = WeightsError if kind == "WeightsError" else SuperResError
            raise cls(f"the worker on node {info['node']} cannot load {model}: {message}", model=str(model))
    first = infos[0]
    for info in infos[1:]:
        keys = ("scale", "window", "window_overlap", "kind")
        if any(info[k] != first[k] for k in keys):
            raise SuperResError(
                f"workers disagree about {model}: node {first['node']} has "
                f"{ {k: first[k] for k in keys} }, node {info['node']} { {k: info[k] for k in keys} }; "
                "install the same vs-superres and model files on every node")
    return actors, infos
