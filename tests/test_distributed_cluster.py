"""Distributed runs on a ``ray.cluster_utils.Cluster`` of two worker nodes (and a head without
CPUs, so a worker runs on each node): the output is the single-process CLI's, and a node
removed mid-run (a replacement joining) does not change it."""

from __future__ import annotations

import pytest

from test_distributed import distributed_cli, make_video, single_process, streams

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")
pytestmark = pytest.mark.skipif(not __import__("shutil").which("ffmpeg"), reason="needs the ffmpeg command")


@pytest.fixture(scope="module")
def cluster():
    c = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = [c.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=c.address, log_to_driver=False, configure_logging=False)
    c.wait_for_nodes()
    yield c, nodes
    ray.shutdown()
    c.shutdown()


def test_two_nodes_give_the_cli_output(tmp_path, cluster, tiny_ditn_path):
    from vs_superres.distributed import upscale_video

    src = make_video(tmp_path / "in.mkv", 15, cut_at=None)
    for model in ("temporal-mean-x2", str(tiny_ditn_path)):
        want = single_process(src, tmp_path / "ref.mkv", "--model", model, "--device", "cpu")
        summary = upscale_video(src, tmp_path / "out.mkv", model=model, address="auto", segment_frames=3, device="cpu")
        assert streams(tmp_path / "out.mkv") == want, model
        assert len(summary.workers) == 2  # one per CPU of the cluster


@pytest.fixture(scope="module")
def tiny_ultravsr(tmp_path_factory):
    from vs_superres.models.ultravsr.tiny import write_tiny_clip, write_tiny_release

    folder = tmp_path_factory.mktemp("ultravsr")
    base, ckpt = write_tiny_release(folder)
    return base, ckpt, write_tiny_clip(folder / "clip.safetensors")


def test_tiny_ultravsr_on_two_nodes_is_the_cli_output(tmp_path, cluster, tiny_ultravsr):
    """The clip state (CLIP-IQA's degradation factor, the prompt) is computed once on one node
    and handed to the workers on both; 10-bit input travels as its integer planes."""
    base, ckpt, clip = tiny_ultravsr
    src = make_video(tmp_path / "in.mkv", 9, pix_fmt="yuv420p10le", cut_at=None)
    model = ("--model", "ultravsr", "--base", str(base), "--checkpoint", str(ckpt), "--clip-iqa", str(clip),
             "--window", "6", "--window-overlap", "2", "--device", "cpu", "-O", "decoder_tile=64", "--prompt", "a test card")
    want = single_process(src, tmp_path / "ref.mkv", *model)
    assert distributed_cli(src, tmp_path / "out.mkv", *model, "--ray", "auto", "--segment-frames", "4", "-q") == 0
    got = streams(tmp_path / "out.mkv")
    assert got == want
    assert "pix_fmt=yuv420p10le" in got[0]


def _raylet_pid(node) -> int:
    from ray._private import ray_constants

    return node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid


def test_a_node_removed_mid_run_is_replaced_and_the_output_is_identical(tmp_path, cluster):
    """A machine joins (before the run: Ray starts a node only from the main thread, and
    progress is reported from the pump's encoding thread), then one of the nodes holding a
    worker goes away mid-run."""
    import psutil

    from vs_superres.distributed import upscale_video

    c, nodes = cluster
    src = make_video(tmp_path / "in.mkv", 20)
    want = single_process(src, tmp_path / "ref.mkv", "--model", "temporal-mean-x2", "--device", "cpu")
    spare = c.add_node(num_cpus=1)
    events: list[str] = []

    def progress(report) -> None:
        if not events:
            events.append("replacement")
            busy = {proc.ppid() for proc in psutil.process_iter() if proc.name().startswith("ray::SegmentWorker")}
            victim = next(n for n in (*nodes, spare) if _raylet_pid(n) in busy)
            c.remove_node(victim, allow_graceful=False)
            events.append("removed")

    summary = upscale_video(src, tmp_path / "out.mkv", model="temporal-mean-x2", workers=2, segment_frames=3,
                            device="cpu", progress=progress)
    assert events == ["replacement", "removed"]
    assert streams(tmp_path / "out.mkv") == want
    assert summary.frames == 20
