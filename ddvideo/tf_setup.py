"""TensorFlow set-up: its import with the native start-up lines hidden, and the GPUs shared rather than taken whole."""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly() -> None:
    """TensorFlow's native start-up lines (CUDA probing, oneDNN) ignore its log-level variables: hide them."""
    if os.environ.get("DDVIDEO_DEBUG") or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):  # the CUDA probe prints here
            tf.config.experimental.set_memory_growth(gpu, True)  # share the card; take what the frames need
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
