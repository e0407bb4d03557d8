"""Music for schedules: a track analysed with librosa into per-frame loudness, onsets, beats and band energies."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from .media import file_fingerprint, read_audio

SAMPLE_RATE = 22050  # librosa's own rate: beats and onsets need nothing above 11 kHz
HOP = 256  # samples between analysis steps: 11.6 ms; beat_track finds tempos on this grid, 512 cannot give 120 BPM
N_FFT = 2048
LEAD_IN = 8 * HOP  # samples of silence put before the track (analyse)
BEAT_DECAY = 0.2  # seconds over which `beat` falls from 1 on a beat to 0
BASS_HZ = 250.0  # `bass` is the energy below this, `treble` the energy above TREBLE_HZ
TREBLE_HZ = 4000.0
BEAT_FLOOR = 0.1  # a beat needs this share of the beats' median onset strength around it (_heard)


@dataclass(frozen=True)
class Music:
    """A decoded track: its samples, and its file's fingerprint for the settings record."""

    path: str
    samples: np.ndarray = field(repr=False)  # (N,) float32 mono at SAMPLE_RATE
    fingerprint: str
    start: float = 0.0  # seconds into the file of the first sample

    @property
    def seconds(self) -> float:
        return self.samples.size / SAMPLE_RATE

    def frames(self, fps: float) -> int:
        """Frames of an animation at `fps` that lasts as long as the track (at least one)."""
        return max(1, round(self.seconds * fps))

    def record(self) -> dict:
        """What a settings record keeps of the music: other music (another file, or the same file changed) is
        another render."""
        return {"path": os.path.abspath(self.path), "sha256": self.fingerprint, "start": self.start}


def load_music(path: str, *, start: float = 0.0, seconds: float | None = None) -> Music:
    """Decode `path` (any file with sound ffmpeg reads) from `start` seconds; InputError if it cannot."""
    return Music(path, read_audio(path, sample_rate=SAMPLE_RATE, start=start, seconds=seconds),
                 file_fingerprint(path), start)


@dataclass(frozen=True)
class Features:
    """The music per frame of a render: each (frames,) float64 in [0, 1], and the frames the beats fall on."""

    values: dict[str, np.ndarray]  # rms, onset, beat, bass, treble
    beat_frames: np.ndarray  # (beats,) int
    tempo: float  # beats per minute, as librosa estimates it


def analyse(music: Music, *, frames: int, fps: float) -> Features:
    """Per-frame features of `music` for a render of `frames` frames at `fps`, each normalised to 0-1 over the
    track (0 past its end). Onset strength and beats are librosa's (onset_strength, beat_track)."""
    import librosa

    # silence before the track, so that a sound at its very first sample still rises out of something
    y = np.pad(music.samples, (LEAD_IN, max(0, N_FFT - music.samples.size)))
    magnitude = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))  # (1 + N_FFT/2, steps)
    mel = librosa.feature.melspectrogram(S=magnitude**2, sr=SAMPLE_RATE)
    onset = librosa.onset.onset_strength(S=librosa.power_to_db(mel), sr=SAMPLE_RATE, hop_length=HOP)
    tempo, beats = librosa.beat.beat_track(onset_envelope=onset, sr=SAMPLE_RATE, hop_length=HOP, units="time",
                                         trim=False)
    rms = librosa.feature.rms(S=magnitude, frame_length=N_FFT, hop_length=HOP)[0]
    freqs = librosa.fft_frequencies(sr=SAMPLE_RATE, n_fft=N_FFT)
    bass = np.sqrt(np.mean(magnitude[freqs < BASS_HZ] ** 2, axis=0))
    treble = np.sqrt(np.mean(magnitude[freqs > TREBLE_HZ] ** 2, axis=0))
    times = librosa.frames_to_time(np.arange(onset.size), sr=SAMPLE_RATE, hop_length=HOP) - LEAD_IN / SAMPLE_RATE
    track = music.frames(fps)  # features over the whole track, normalised, then fitted to the render's frames
    values = {
        "rms": _per_frame(times, rms[: onset.size], fps=fps, frames=track, reduce="mean"),
        "onset": _per_frame(times, onset, fps=fps, frames=track, reduce="max"),
        "bass": _per_frame(times, bass[: onset.size], fps=fps, frames=track, reduce="mean"),
        "treble": _per_frame(times, treble[: onset.size], fps=fps, frames=track, reduce="mean"),
    }
    values = {name: _fit(_normalised(v), frames) for name, v in values.items()}
    beats = _heard(np.asarray(beats), onset) - LEAD_IN / SAMPLE_RATE
    beat_frames = np.unique(np.rint(beats * fps).astype(int))
    beat_frames = beat_frames[(beat_frames >= 0) & (beat_frames < frames)]
    values["beat"] = beat_envelope(beat_frames, frames=frames, fps=fps)
    return Features(values, beat_frames, float(np.atleast_1d(tempo)[0]))


def _heard(beats: np.ndarray, onset: np.ndarray) -> np.ndarray:
    """The beats (seconds) with an onset under them: beat_track's path runs on through silence at the ends (its
    own trim also dropped the first and last clicks of a click track), so beats with less than BEAT_FLOOR of the
    beats' median onset strength nearby are dropped."""
    if beats.size == 0:
        return beats
    steps = np.rint(beats * SAMPLE_RATE / HOP).astype(int)
    near = np.array([onset[max(0, s - 2):s + 3].max(initial=0.0) for s in steps])
    return beats[near >= BEAT_FLOOR * np.median(near)]


def beat_envelope(beat_frames: np.ndarray, *, frames: int, fps: float) -> np.ndarray:
    """(frames,) 1 at each beat's frame, falling in a straight line to 0 over BEAT_DECAY seconds after it."""
    out = np.zeros(frames)
    length = max(BEAT_DECAY * fps, 1.0)
    for beat in beat_frames:
        span = np.arange(beat, min(frames, beat + math.ceil(length)))
        out[span] = np.maximum(out[span], 1.0 - (span - beat) / length)
    return out


def _per_frame(times: np.ndarray, values: np.ndarray, *, fps: float, frames: int, reduce: str) -> np.ndarray:
    """Analysis steps at `times` gathered into the video frames nearest them (mean or max); a frame no step falls
    in (a frame rate above 43 fps) takes the value at its time."""
    index = np.rint(times * fps).astype(int)
    keep = (index >= 0) & (index < frames)
    index, times, values = index[keep], times[keep], values[keep]
    count = np.bincount(index, minlength=frames)[:frames]
    if reduce == "max":
        out = np.zeros(frames)
        np.maximum.at(out, index, values)
    else:
        out = np.bincount(index, weights=values, minlength=frames)[:frames] / np.maximum(count, 1)
    empty = count == 0
    if empty.any():
        out[empty] = np.interp(np.flatnonzero(empty) / fps, times, values) if values.size else 0.0
    return out


def _normalised(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return np.zeros_like(values) if high - low < 1e-12 else (values - low) / (high - low)


def _fit(values: np.ndarray, frames: int) -> np.ndarray:
    """The first `frames` values, padded with 0 (silence) where the render outlasts the track."""
    return np.pad(values[:frames], (0, max(0, frames - values.size)))
