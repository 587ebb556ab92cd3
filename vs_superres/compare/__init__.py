"""See the result before trusting it: input and outputs side by side, with honest figures.

    from vs_superres.compare import compare, write_report, write_split_video
    result = compare(["in.mp4", "ditn.mp4", "ultravsr.mp4"], reference=None)
    result.summary()         # {"B": {"flicker": 0.0012, "change": 0.0031}, ...}
    result.to_dict()         # the figures as JSON types (what `superres compare --json` prints)
    write_report(result, "report.html")
    write_split_video("in.mp4", "ditn.mp4", "side.mp4", mode="wipe")

- :mod:`.inputs`: the files, checked to be the same frames (sizes a scale apart, one rate and
  length), read in step one frame at a time;
- :mod:`.metrics`: PSNR and SSIM on Y as the video-SR papers compute them (only against a
  reference); :mod:`.flicker`: E*warp with the input's optical flow (OpenCV, the ``compare``
  extra); :mod:`.regions`: where the detail is;
- :mod:`.analysis`: :func:`compare`, the sampled frames and the figures over time
  (:mod:`.result`); :mod:`.report`: the self-contained HTML (:mod:`.plot`: inline SVG);
  :mod:`.splitscreen`: a split-screen or wipe video through the one run path.

It sits beside the host kit in the layers (it reads and writes media, hosts show it).
"""

from vs_superres.compare.analysis import compare
from vs_superres.compare.report import write_report
from vs_superres.compare.result import Comparison, SampledFrame, Series
from vs_superres.compare.splitscreen import write_split_video

__all__ = ["Comparison", "SampledFrame", "Series", "compare", "write_report", "write_split_video"]
