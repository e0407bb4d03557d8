"""Guide pictures of guided dreams: reading one for the dream, and naming it in a render's settings record."""

from __future__ import annotations

import hashlib
import os

import numpy as np

from .errors import InputError
from .media import read_image
from .transforms import resize_to_fit

# Every feature vector of the guide is compared with every feature vector of the frame (or of one dream tile), so
# the guide's size sets the memory of that matching; 512 px is the default dream tile's size.
GUIDE_MAX_SIZE = 512


def read_guide(path: str | os.PathLike) -> np.ndarray:
    """The guide picture as (H, W, 3) uint8, scaled down to GUIDE_MAX_SIZE on its long side; errors name --guide."""
    try:
        image = read_image(path)
    except InputError as exc:
        raise InputError(f"--guide: {exc}") from None
    return resize_to_fit(image, max_size=GUIDE_MAX_SIZE)


def guide_record(guide: np.ndarray | None) -> dict[str, str]:
    """The guide's entry in a render's settings record (its size and a digest of its pixels), so that a resume
    with another guide is refused; empty without a guide, so unguided records stay as they were."""
    if guide is None:
        return {}
    digest = hashlib.sha256(np.ascontiguousarray(guide).tobytes()).hexdigest()[:16]
    return {"guide": f"{guide.shape[1]}x{guide.shape[0]} sha256:{digest}"}
