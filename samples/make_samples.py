"""Rebuild samples/coffee_pan.mp4: a camera move (pan and slow zoom) over samples/coffee.png, with a stereo chord."""

import subprocess
import sys
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

HERE = Path(__file__).parent
WIDTH, HEIGHT, FPS, SECONDS = 360, 240, 24, 3


def first_crop_width(photo: np.ndarray) -> float:
    """Photo pixels across the camera's first frame."""
    return photo.shape[1] * 0.80


def camera_frames(photo: np.ndarray):
    """Crop windows that pan left to right and zoom in a little, resized to WIDTH x HEIGHT."""
    h, w = photo.shape[:2]
    n = FPS * SECONDS
    for i in range(n):
        t = i / (n - 1)
        crop_w = first_crop_width(photo) - w * 0.10 * t
        crop_h = crop_w * HEIGHT / WIDTH
        cx = crop_w / 2 + (w - crop_w) * (0.15 + 0.7 * t)
        cy = h / 2 + 10 * np.sin(2 * np.pi * t)
        scale = WIDTH / crop_w
        matrix = np.float32([[scale, 0, WIDTH / 2 - scale * cx], [0, scale, HEIGHT / 2 - scale * cy]])
        yield cv2.warpAffine(photo, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def main() -> None:
    photo = cv2.cvtColor(cv2.imread(str(HERE / "coffee.png")), cv2.COLOR_BGR2RGB)
    out = HERE / "coffee_pan.mp4"
    audio = f"aevalsrc=0.2*sin(2*PI*220*t)+0.15*sin(2*PI*277*t)|0.2*sin(2*PI*330*t)+0.1*sin(2*PI*440*t):s=44100:d={SECONDS}"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-",
           "-f", "lavfi", "-i", audio,
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "20", "-c:a", "aac", "-b:a", "96k",
           "-movflags", "+faststart", "-shortest", str(out)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for frame in camera_frames(photo):
        proc.stdin.write(frame.tobytes())
    proc.stdin.close()
    sys.exit(proc.wait())


if __name__ == "__main__":
    main()
