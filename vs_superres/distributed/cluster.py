"""Ray: finding it, joining or starting an instance, and placing one worker per slot.

Ray is an optional extra; every import of it goes through :func:`import_ray`, whose error says
how to install it. Joining an address that does not answer is refused after a plain TCP check
(seconds), where Ray itself would retry for a minute before giving up.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any, Iterator

from vs_superres.contracts.errors import InvalidOption, SuperResError, WeightsError, option_ref

INSTALL_HINT = "pip install vs-superres[ray]"


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


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of an address that names one (``host:port``, ``ray://host:port``)."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse, in seconds, an address where nothing listens."""
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout):
            return
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
    raise SuperResError(
        f"cannot reach the Ray cluster at {address!r} ({why}); start one there with `ray start --head` "
        "(it prints the address to join: HOST:6379, or ray://HOST:10001 for Ray Client), check the "
        "host, port and firewall, or use --ray auto on a node of a running cluster",
        option="ray")


@contextlib.contextmanager
def connected(address: str | None, num_cpus: int) -> Iterator[Any]:
    """Ray, joined to ``address`` or to a local instance of ``num_cpus`` slots started here
    (and stopped on exit). A process already connected (``ray.init`` done by the caller) keeps
    its connection, whatever ``address`` says."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address is not None:
        check_reachable(address)
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except ConnectionError as exc:
        raise SuperResError(
            f"cannot join the Ray cluster at {address!r}: {exc}; start one with `ray start --head`, or "
            "give its address (--ray HOST:6379)", option="ray") from None
    try:
        yield ray
    finally:
        ray.shutdown()


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
