"""Rebuild samples/coffee_pan.mp4 (a camera move, pan and slow zoom, over samples/coffee.png, with a stereo chord)
and samples/beat.mp3 (8 s of a 120 BPM kick and hi-hat over a chord, for music-driven schedules)."""

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


BEAT_SECONDS = 8
# a kick on every beat (a falling sine with a click), a soft hi-hat between (noise), an A minor chord under them
BEAT = ("0.7*sin(2*PI*(50+90*exp(-30*mod(t,0.5)))*mod(t,0.5))*exp(-9*mod(t,0.5))"
        "+0.3*(2*random(1)-1)*exp(-400*mod(t,0.5))"
        "+0.04*(2*random(0)-1)*exp(-90*mod(t+0.25,0.5))"
        "+0.05*(sin(2*PI*220*t)+sin(2*PI*261.6*t)+sin(2*PI*329.6*t))")


def make_beat() -> int:
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
           "-f", "lavfi", "-i", "aevalsrc=" + BEAT.replace(",", "\\,") + f":s=44100:d={BEAT_SECONDS}",
           "-c:a", "libmp3lame", "-b:a", "96k", str(HERE / "beat.mp3")]
    return subprocess.run(cmd).returncode


def main() -> None:
    if make_beat():
        sys.exit(1)
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
