"""Music analysis: beats of generated click tracks against their clicks, and the time to analyse a 5-minute track.

    .venv/bin/python benchmarks/audio.py            # about a minute; prints the figures as Markdown

The 5-minute track is made here (a kick on every beat at 128 BPM, a hi-hat between, a chord pad that changes every
bar), encoded to MP3 by the bundled ffmpeg, then decoded and analysed as `--audio` does. Importing librosa is
timed on its own (numba loads its compiled code from its cache, and compiles one function every time).
"""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RATE = 44100


def write_wav(path: str, samples: np.ndarray) -> None:
    with wave.open(path, "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(RATE)
        f.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())


def click_track(seconds: float, bpm: float, first: float) -> tuple[np.ndarray, np.ndarray]:
    samples = np.zeros(int(seconds * RATE), np.float32)
    n = np.arange(int(0.02 * RATE))
    burst = np.sin(2 * np.pi * 1000 * n / RATE) * np.exp(-n / (0.004 * RATE))
    clicks = np.arange(first, seconds - 0.05, 60.0 / bpm)
    for click in clicks:
        i = int(round(click * RATE))
        samples[i:i + burst.size] += burst[: samples.size - i]
    return samples * 0.8, clicks


def song(seconds: float, bpm: float = 128.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    out = np.zeros_like(t)
    beat = 60.0 / bpm
    kick_t = np.arange(int(0.25 * RATE)) / RATE
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-kick_t * 30)) * kick_t) * np.exp(-kick_t * 12)
    hat = rng.normal(0, 1, int(0.05 * RATE)) * np.exp(-np.arange(int(0.05 * RATE)) / (0.008 * RATE))
    hat = np.diff(hat, prepend=0)  # brighter
    for k in range(int(seconds / beat)):
        i = int(k * beat * RATE)
        out[i:i + kick.size] += 0.8 * kick[: out.size - i]
        j = int((k + 0.5) * beat * RATE)
        out[j:j + hat.size] += 0.2 * hat[: max(0, out.size - j)]
    chords = [(220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6), (196.0, 246.9, 311.1)]
    bar = 4 * beat
    for k in range(int(seconds / bar) + 1):
        a, b = int(k * bar * RATE), min(out.size, int((k + 1) * bar * RATE))
        for f in chords[k % len(chords)]:
            out[a:b] += 0.05 * np.sin(2 * np.pi * f * t[a:b])
    return out


def main() -> None:
    from ddvideo.audio import analyse, load_music
    from ddvideo.media import ffmpeg_exe

    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.", ""]
    with tempfile.TemporaryDirectory() as folder:
        wav, mp3 = os.path.join(folder, "song.wav"), os.path.join(folder, "song.mp3")
        write_wav(wav, song(300.0))
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", wav, "-b:a", "192k", mp3], check=True)
        began = time.perf_counter()
        for module in ("librosa.beat", "librosa.feature", "librosa.onset"):  # numba loads or compiles its code
            importlib.import_module(module)

        imported = time.perf_counter() - began
        load = os.getloadavg()[0]
        times = []
        for run in ("first in the process", "again"):
            began = time.perf_counter()
            music = load_music(mp3)
            decoded = time.perf_counter()
            features = analyse(music, frames=music.frames(24.0), fps=24.0)
            done = time.perf_counter()
            times.append((run, decoded - began, done - decoded, done - began, features.tempo, len(features.beat_frames)))
        lines += [f"Importing librosa (once per process, before the first analysis): {imported:.2f} s. "
                  f"Load average when it started: {load:.1f}.", "",
                  "| 5-minute MP3, 24 fps | decode (s) | analyse (s) | total (s) | tempo (BPM) | beats |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r} | {d:.2f} | {a:.2f} | {t:.2f} | {tempo:.1f} | {beats} |"
                  for r, d, a, t, tempo, beats in times]
        lines += ["", "| click track | fps | clicks | beat peaks | within one frame | peaks elsewhere | tempo (BPM) |",
                  "|---|---|---|---|---|---|---|"]
        for bpm, first, fps in ((120, 0.0, 24.0), (120, 0.25, 24.0), (120, 0.1, 30.0), (90, 0.3, 24.0),
                                (140, 0.05, 60.0)):
            samples, clicks = click_track(30.0, bpm, first)
            path = os.path.join(folder, "clicks.wav")
            write_wav(path, samples)
            music = load_music(path)
            features = analyse(music, frames=music.frames(fps), fps=fps)
            peaks = np.flatnonzero(features.values["beat"] == 1.0)
            want = np.rint(clicks * fps).astype(int)
            near = sum(bool(np.any(np.abs(peaks - w) <= 1)) for w in want)
            extra = sum(not np.any(np.abs(want - p) <= 1) for p in peaks)
            lines.append(f"| {bpm} BPM from {first:g} s, 30 s | {fps:g} | {len(want)} | {len(peaks)} | {near} | {extra} "
                         f"| {features.tempo:.1f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
