"""ddvideo: DeepDream videos and infinite-zoom animations on TensorFlow/Keras."""

import os

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) is not ours to show; errors still raise.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# oneDNN's CPU kernels may round differently from one process to the next; a resumed render must equal an
# uninterrupted one frame for frame, so they are off unless the user turns them on (about 25 % faster on CPU).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
