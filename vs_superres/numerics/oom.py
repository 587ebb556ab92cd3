"""Out-of-memory recovery shared by the runtime's tiling and by families that tile themselves."""

from __future__ import annotations

from typing import Callable, TypeVar

import torch

from vs_superres.contracts.errors import Cancelled, SuperResError, option_ref

T = TypeVar("T")


def is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError):
        return True
    msg = str(err).lower()
    return isinstance(err, RuntimeError) and (
        "out of memory" in msg or "can't allocate memory" in msg or "not enough memory" in msg
    )


def align_up(n: int, a: int) -> int:
    return -(-n // a) * a


def retry_on_oom(
    attempt: Callable[[int], T],
    tile: int,
    *,
    floor: int,
    alignment: int = 1,
    what: str = "tiles",
    on_shrink: Callable[[int], None] | None = None,
) -> T:
    """Call ``attempt(tile)``; on out-of-memory halve the tile (aligned, not below ``floor``) and retry.

    Raises a :class:`SuperResError` naming the last tile size when even ``floor`` fails.
    Errors other than out-of-memory propagate unchanged.
    """
    floor = align_up(max(floor, alignment), alignment)
    while True:
        try:
            return attempt(tile)
        except Cancelled:
            raise
        except Exception as err:  # noqa: BLE001 - only out-of-memory is handled here
            if not is_out_of_memory(err):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if tile <= floor:
                raise SuperResError(
                    f"out of memory even with {tile}x{tile} {what} ({err.__class__.__name__}); "
                    f"use a smaller {option_ref('window')}, {option_ref('dtype', 'fp16')} or bf16, free GPU "
                    f"memory, or {option_ref('device', 'cpu')}", option="device"
                ) from None
            tile = max(floor, tile // 2 // alignment * alignment)
            if on_shrink:
                on_shrink(tile)
