"""Colour metadata of video streams and the Y'CbCr <-> R'G'B' maths, done in numpy.

Why not swscale: PyAV's ``reformat`` converts with the matrix it is told, and when it is told
nothing it falls back to BT.601 -- the colour shift Video2X users have reported for years. Here
the matrix, range and chroma siting always come from the source's own tags, and the same tags
drive the inverse on the way out, so a frame read and written back keeps its colour.

Values are the FFmpeg enum numbers (``AVColorSpace``, ``AVColorRange``, ``AVColorPrimaries``,
``AVColorTransferCharacteristic``, ``AVChromaLocation``); :data:`MATRIX_NAMES` and friends give
the names ffprobe prints. Transfer and primaries are carried, never applied: networks work on
the same non-linear R'G'B' signal a player would show.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from vs_superres.contracts.errors import SuperResError

MATRIX_NAMES = {
    0: "gbr", 1: "bt709", 2: "unknown", 4: "fcc", 5: "bt470bg", 6: "smpte170m",
    7: "smpte240m", 8: "ycgco", 9: "bt2020nc", 10: "bt2020c", 11: "smpte2085",
    12: "chroma-derived-nc", 13: "chroma-derived-c", 14: "ictcp",
}
RANGE_NAMES = {0: "unknown", 1: "tv", 2: "pc"}
PRIMARIES_NAMES = {
    1: "bt709", 2: "unknown", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
    8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213",
}
TRANSFER_NAMES = {
    1: "bt709", 2: "unknown", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m",
    8: "linear", 9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e",
    13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 17: "smpte428",
    18: "arib-std-b67",
}
CHROMA_LOCATION_NAMES = {
    0: "unspecified", 1: "left", 2: "center", 3: "topleft", 4: "top", 5: "bottomleft",
    6: "bottom",
}

MATRIX_UNSPECIFIED = 2
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
CHROMA_LEFT = 1

# (Kr, Kb) luma coefficients per matrix.
_LUMA_COEFFICIENTS = {
    1: (0.2126, 0.0722),   # BT.709
    4: (0.30, 0.11),       # FCC
    5: (0.299, 0.114),     # BT.470BG (same as BT.601 625)
    6: (0.299, 0.114),     # SMPTE 170M (BT.601 525)
    7: (0.212, 0.087),     # SMPTE 240M
    9: (0.2627, 0.0593),   # BT.2020 non-constant luminance
}
_YCGCO = 8


@dataclass(frozen=True)
class ColourInfo:
    """Colour tags of a stream (FFmpeg enum numbers) plus what was assumed where untagged.

    ``matrix_guessed``: the stream had no matrix tag; :attr:`matrix` holds the assumption
    (BT.709 above 1024x576, else SMPTE 170M), which a writer then tags explicitly so a player
    cannot guess differently at the new resolution. ``chroma_location_guessed``: the siting
    was unknown and ``left`` (the MPEG-2/H.264/HEVC default) is assumed.
    """

    matrix: int = 1
    range: int = RANGE_LIMITED
    primaries: int = 2
    transfer: int = 2
    chroma_location: int = CHROMA_LEFT
    matrix_guessed: bool = False
    chroma_location_guessed: bool = False

    def names(self) -> dict:
        """The tags as ffprobe names, e.g. ``{"matrix": "bt709", "range": "tv", ...}``."""
        return {
            "matrix": MATRIX_NAMES.get(self.matrix, str(self.matrix)),
            "range": RANGE_NAMES.get(self.range, str(self.range)),
            "primaries": PRIMARIES_NAMES.get(self.primaries, str(self.primaries)),
            "transfer": TRANSFER_NAMES.get(self.transfer, str(self.transfer)),
            "chroma_location": CHROMA_LOCATION_NAMES.get(
                self.chroma_location, str(self.chroma_location)),
        }

    @property
    def is_full_range(self) -> bool:
        return self.range == RANGE_FULL


def guess_matrix(width: int, height: int) -> int:
    """The matrix players assume for an untagged stream of this size (mpv's rule)."""
    return 1 if (width > 1024 or height > 576) else 6


def inferred_primaries_transfer(matrix: int) -> tuple[int, int]:
    """The primaries and transfer a stream with this colour ``matrix`` almost always has, where
    its own tags are missing (a y4m stream carries none): BT.709 -> BT.709/BT.709, BT.601 525
    (smpte170m) -> smpte170m/smpte170m, BT.601 625 (bt470bg) -> bt470bg/smpte170m (the
    broadcast practice), BT.2020 -> BT.2020/unknown (SDR, PQ and HLG share the matrix: the
    transfer cannot be inferred); 2 (unknown) where nothing can be said."""
    return {1: (1, 1), 6: (6, 6), 5: (5, 6), 9: (9, 2), 10: (9, 2), 7: (7, 7)}.get(matrix, (2, 2))


def _range_params(bits: int, full: bool) -> tuple[float, float, float, float]:
    """(luma offset, luma scale, chroma offset, chroma scale) in code values."""
    if full:
        peak = float((1 << bits) - 1)
        return 0.0, peak, float(1 << (bits - 1)), peak
    s = float(1 << (bits - 8))
    return 16.0 * s, 219.0 * s, 128.0 * s, 224.0 * s


def _coefficients(matrix: int) -> tuple[float, float]:
    if matrix in _LUMA_COEFFICIENTS:
        return _LUMA_COEFFICIENTS[matrix]
    name = MATRIX_NAMES.get(matrix, str(matrix))
    raise SuperResError(
        f"video uses the colour matrix '{name}', which vs-superres cannot convert exactly; "
        "expected bt709, bt601 (smpte170m/bt470bg), bt2020nc, smpte240m, fcc or ycgco; "
        "convert the source first, e.g. `ffmpeg -i IN -vf colorspace=all=bt709 OUT`")


def yuv_to_rgb(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, bits: int,
               colour: ColourInfo) -> np.ndarray:
    """Full-resolution Y'CbCr code values ([H,W] each) -> R'G'B' float32 [3,H,W] in [0,1]."""
    y_off, y_scale, c_off, c_scale = _range_params(bits, colour.is_full_range)
    yn = (y.astype(np.float32) - y_off) * np.float32(1.0 / y_scale)
    u = (cb.astype(np.float32) - c_off) * np.float32(1.0 / c_scale)
    v = (cr.astype(np.float32) - c_off) * np.float32(1.0 / c_scale)
    out = np.empty((3,) + yn.shape, dtype=np.float32)
    if colour.matrix == _YCGCO:  # Y=Y, Cb=Cg, Cr=Co
        t = yn - u
        out[0], out[1], out[2] = t + v, yn + u, t - v
    else:
        kr, kb = _coefficients(colour.matrix)
        kg = 1.0 - kr - kb
        out[0] = yn + np.float32(2 * (1 - kr)) * v
        out[2] = yn + np.float32(2 * (1 - kb)) * u
        out[1] = yn - np.float32(2 * kb * (1 - kb) / kg) * u - np.float32(2 * kr * (1 - kr) / kg) * v
    return np.clip(out, 0.0, 1.0, out=out)


def rgb_to_yuv(rgb: np.ndarray, bits: int, colour: ColourInfo
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R'G'B' float [3,H,W] in [0,1] -> Y', Cb, Cr as unrounded float32 code values [H,W]."""
    r, g, b = (np.asarray(c, dtype=np.float32) for c in rgb)
    if colour.matrix == _YCGCO:
        yn = 0.25 * r + 0.5 * g + 0.25 * b
        u = -0.25 * r + 0.5 * g - 0.25 * b
        v = 0.5 * (r - b)
    else:
        kr, kb = _coefficients(colour.matrix)
        yn = np.float32(kr) * r + np.float32(1 - kr - kb) * g + np.float32(kb) * b
        u = (b - yn) * np.float32(0.5 / (1 - kb))
        v = (r - yn) * np.float32(0.5 / (1 - kr))
    y_off, y_scale, c_off, c_scale = _range_params(bits, colour.is_full_range)
    return (yn * np.float32(y_scale) + np.float32(y_off),
            u * np.float32(c_scale) + np.float32(c_off),
            v * np.float32(c_scale) + np.float32(c_off))


def chroma_offsets(location: int, log2_w: int, log2_h: int) -> tuple[float, float]:
    """Position of chroma sample 0 in luma pixels (x, y) for an ``AVChromaLocation``."""
    fw, fh = 1 << log2_w, 1 << log2_h
    horizontal_cosited = location in (0, 1, 3, 5)
    ox = 0.0 if horizontal_cosited else (fw - 1) / 2.0
    if location in (3, 4):
        oy = 0.0
    elif location in (5, 6):
        oy = float(fh - 1)
    else:
        oy = (fh - 1) / 2.0
    return ox, oy


@lru_cache(maxsize=64)
def _upsample_taps(n_out: int, n_in: int, factor: int, offset: float):
    pos = (np.arange(n_out, dtype=np.float64) - offset) / factor
    pos = np.clip(pos, 0, n_in - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = (pos - i0).astype(np.float32)
    return i0, i1, w


def upsample_chroma(plane: np.ndarray, width: int, height: int, log2_w: int, log2_h: int,
                    offsets: tuple[float, float]) -> np.ndarray:
    """Linear interpolation of a subsampled chroma plane [h,w] to [height,width] float32."""
    out = plane.astype(np.float32)
    if log2_h:
        i0, i1, w = _upsample_taps(height, out.shape[0], 1 << log2_h, offsets[1])
        out = out[i0] * (1 - w)[:, None] + out[i1] * w[:, None]
    if log2_w:
        i0, i1, w = _upsample_taps(width, out.shape[1], 1 << log2_w, offsets[0])
        out = out[:, i0] * (1 - w) + out[:, i1] * w
    return out


def _downsample_axis(x: np.ndarray, axis: int, n_out: int, factor: int,
                     offset: float) -> np.ndarray:
    """Tent filter of radius ``factor`` centred on each chroma site (edges replicated)."""
    n_in = x.shape[axis]
    lo, hi = int(np.floor(offset - factor + 1)), int(np.ceil(offset + factor - 1))
    acc, total = None, 0.0
    for tap in range(lo, hi + 1):
        weight = max(0.0, 1.0 - abs(tap - offset) / factor)
        if weight == 0.0:
            continue
        idx = np.clip(np.arange(n_out) * factor + tap, 0, n_in - 1)
        term = np.take(x, idx, axis=axis) * np.float32(weight)
        acc = term if acc is None else acc + term
        total += weight
    assert acc is not None  # the centre tap always has weight
    return acc * np.float32(1.0 / total)


def downsample_chroma(plane: np.ndarray, log2_w: int, log2_h: int,
                      offsets: tuple[float, float]) -> np.ndarray:
    """Full-resolution chroma [H,W] -> subsampled [ceil(H/2^log2_h), ceil(W/2^log2_w)]."""
    out = plane
    if log2_h:
        f = 1 << log2_h
        out = _downsample_axis(out, 0, -(-out.shape[0] // f), f, offsets[1])
    if log2_w:
        f = 1 << log2_w
        out = _downsample_axis(out, 1, -(-out.shape[1] // f), f, offsets[0])
    return out
