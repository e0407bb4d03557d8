"""ddvideo: DeepDream videos and infinite-zoom animations on TensorFlow/Keras."""

import os

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) is not ours to show; errors still raise.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
