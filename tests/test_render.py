"""The work folder of a render: what it keeps, and what it removes when the render is done."""

import numpy as np

from ddvideo.render import FrameStore


def test_remove_takes_only_what_the_render_made(tmp_path):
    store = FrameStore(str(tmp_path / "work"), {"mode": "video"})
    for index in range(3):
        store.save(index, np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "work" / "frames" / ".000003.png.partial-1a2b.png").write_bytes(b"half")  # killed mid-write
    store.remove()
    assert not (tmp_path / "work").exists()

    mine = FrameStore(str(tmp_path / "mine"), {"mode": "video"})
    mine.save(0, np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    mine.remove()
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_finished_counts_frames_without_a_gap(tmp_path):
    store = FrameStore(str(tmp_path / "work"), {"mode": "zoom"})
    for index in (0, 1, 3):
        store.save(index, np.full((2, 2, 3), index, np.uint8))
    assert store.finished() == 2
    assert store.load(1)[0, 0, 0] == 1
