"""Frame transforms used by video mode: the stride-grid canvas."""

import numpy as np
import pytest

from ddvideo.transforms import grid_canvas


@pytest.mark.parametrize("offset, expected", [((0.0, 0.0), (0, 0)), ((-3.2, 0.0), (0, 3)), ((5.0, -17.6), (2, 11)),
                                              ((16.0, 32.0), (0, 0))])
def test_grid_canvas_undoes_the_motion_modulo_the_grid(offset, expected):
    frame = np.arange(6 * 10 * 3, dtype=np.uint8).reshape(6, 10, 3)
    canvas, (sy, sx) = grid_canvas(frame, offset=np.array(offset), grid=16)
    assert (sy, sx) == expected and canvas.shape == (22, 26, 3)
    assert np.array_equal(canvas[sy : sy + 6, sx : sx + 10], frame)
    # content that moved by `offset` sits on the same lattice phase as before: x + dx + sx = x (mod 16)
    assert round(offset[0] + sx) % 16 == 0 and round(offset[1] + sy) % 16 == 0


def test_grid_canvas_pads_by_reflection():
    frame = np.zeros((4, 5), np.uint8)
    frame[:, 0] = 200  # a bright left column
    canvas, (sy, sx) = grid_canvas(frame, offset=np.array([-2.0, 0.0]), grid=4)
    assert (sy, sx) == (0, 2) and canvas.shape == (8, 9)
    assert canvas[0, sx] == 200 and canvas[0, sx - 1] == 0 and canvas[0, sx + 1] == 0  # mirrored, edge not repeated
