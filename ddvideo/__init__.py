"""ddvideo: DeepDream videos and infinite-zoom animations on TensorFlow/Keras."""
