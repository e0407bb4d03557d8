"""Shared fixtures: one seeded random-weight InceptionV3 for the whole session, and small test images."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import re

import numpy as np
import pytest

from ddvideo.models import ModelSettings, load_model

# mixed2/mixed3 keep test frames small (the keras preset needs frames over 200 px for 3 octaves)
SMALL_LAYERS = "mixed2=1.0,mixed3=2.0"


@pytest.fixture(scope="session")
def inception():
    return load_model(ModelSettings(model="inception_v3", weights="none", seed=0))


SMALL_NET_LAYERS = "conv2=1.0,conv3=2.0"


@pytest.fixture(scope="session")
def small_net(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of a seeded four-layer convolutional net saved as a .keras file (its layers conv0-conv3, each halving
    the picture), for tests that render in processes of their own: each such process loads and traces it about 6 s
    faster than InceptionV3, and what those tests check is not the network."""
    import keras

    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((None, None, 3))
    for k, filters in enumerate((16, 32, 48, 64)):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu", name=f"conv{k}")(x)
    path = tmp_path_factory.mktemp("small_net") / "small.keras"
    keras.Model(inputs, x).save(path)
    return str(path)


def small_net_options(path: str, *, iterations: int) -> list[str]:
    """Command-line options that dream fast with the small net saved at `path`."""
    return ["--model", path, "--layers", SMALL_NET_LAYERS, "--octaves", "1", "--iterations", str(iterations), "-q"]


def textured_image(height: int, width: int, *, seed: int = 0) -> np.ndarray:
    """A smooth random colour texture, (H, W, 3) uint8."""
    import cv2

    noise = np.random.default_rng(seed).uniform(0, 255, (height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 3) * 3 - 255, 0, 255).astype(np.uint8)


class Interrupt:
    """A progress callback that stops the render like Ctrl-C once `after` frames are finished."""

    def __init__(self, after: int):
        self.after, self.seen = after, 0

    def __call__(self, index, total, loss) -> None:
        self.seen += 1
        if self.seen >= self.after:
            raise KeyboardInterrupt


def one_error_line(stderr: str | list[str], pattern: str = "") -> str:
    """Assert the command printed exactly one `ddvideo: error: ...` line (`ddvideo CMD: error: ...` for a malformed
    option), no traceback, matching `pattern`; return it."""
    lines = stderr.strip().splitlines() if isinstance(stderr, str) else stderr
    assert len(lines) == 1, lines
    assert re.match(r"ddvideo( \w+)?: error: ", lines[0]) and "Traceback" not in lines[0], lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.fixture
def texture():
    return textured_image
