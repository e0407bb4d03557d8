"""Batch renders: manifest checks, a failing job beside a finishing one, resume after a kill, Ray, segment seams."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import SMALL_LAYERS, SMALL_NET_LAYERS, textured_image
from ddvideo.batch import (
    HELD_WARMUP,
    MAX_WARMUP,
    Job,
    ManifestError,
    dissolve,
    format_summary,
    load_manifest,
    parse_gpus,
    plan_segments,
    run_batch,
    split_frames,
    visible_gpus,
    warmup_frames,
)
from ddvideo.cli import main
from ddvideo.errors import SettingsError
from ddvideo.flow import FlowSettings
from ddvideo.media import VideoReader, VideoWriter, WorkLock, ffmpeg_exe, join_segments, probe_video, write_image
from ddvideo.media.lock import LOCK_NAME
from ddvideo.metrics import warping_error

ROOT = Path(__file__).resolve().parents[1]
FPS = 12
DEFAULTS = f"""\
[defaults]
mode = "video"
weights = "none"
layers = "{SMALL_LAYERS}"
octaves = 1
iterations = 1
"""


def pan_clip(path: Path, *, frames: int, size: int = 112, step: int = 3, audio: bool = False) -> Path:
    """A texture panning `step` px per frame (reliable flow everywhere), optionally with a tone from ffmpeg."""
    big = textured_image(size, size + step * frames, seed=3)
    silent = path.with_name(f".silent-{path.name}") if audio else path
    with VideoWriter(silent, fps=FPS, size=(size, size)) as writer:
        for t in range(frames):
            writer.write(np.ascontiguousarray(big[:, step * t : step * t + size]))
    if audio:
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(silent), "-f", "lavfi", "-t", str(frames / FPS),
                        "-i", "sine=frequency=440:sample_rate=48000", "-c:v", "copy", "-c:a", "aac", str(path)],
                       check=True)
        silent.unlink()
    return path


def net_defaults(model: str) -> str:
    """DEFAULTS with conftest's small net in place of InceptionV3, for jobs that dream in worker processes."""
    return DEFAULTS.replace(f'layers = "{SMALL_LAYERS}"', f'model = "{model}"\nlayers = "{SMALL_NET_LAYERS}"')


def write_manifest(folder: Path, jobs: str, *, defaults: str = DEFAULTS, name: str = "jobs.toml") -> Path:
    path = folder / name
    path.write_text(defaults + "\n" + jobs)
    return path


def problems_of(path: Path) -> tuple[str, ...]:
    """The problems load_manifest finds in the manifest at `path` (it must find some)."""
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    return caught.value.problems


def decode(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return list(reader)


def pair_errors(source: list[np.ndarray], output: list[np.ndarray]) -> list[float]:
    """E_warp of each pair (t, t+1) on its own."""
    return [warping_error(source[t : t + 2], output[t : t + 2]) for t in range(len(source) - 1)]


def finished_frames(folder: Path) -> int:
    """Frames a killed render has finished (a frame being written is a hidden temporary)."""
    count = 0
    while (folder / f"{count:06d}.png").exists():
        count += 1
    return count


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pan_clip(tmp_path_factory.mktemp("clip") / "pan.mp4", frames=24)


# -- pure parts ----------------------------------------------------------------------------------------
def test_split_frames_covers_the_clip() -> None:
    assert split_frames(16, 2) == [(0, 8), (8, 16)]
    assert split_frames(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert split_frames(3, 5) == [(0, 1), (1, 2), (2, 3)]  # never an empty segment


def test_segments_overlap_by_a_bridge_and_warm_up_before_it(tmp_path: Path) -> None:
    job = Job(1, "a", "video", ("video",), "in.mp4", str(tmp_path / "a.mp4"), str(tmp_path / "a.mp4.ddwork"), 1,
              frames=100, fps=25.0, warmup=13, segmentable=True)
    a, b, c = plan_segments(job, 3)
    assert [(s.first, s.stop, s.lead, s.tail, s.warmup) for s in (a, b, c)] == [
        (0, 33, 0, 8, 0), (33, 67, 8, 8, 13), (67, 100, 8, 0, 13)]
    assert a.main.endswith("segments/000-of-003/main.mkv") and b.lead_dir.endswith("001-of-003/lead/")
    assert [s.lead for s in plan_segments(replace(job, frames=12), 2)] == [0, 2]  # short segments: short bridges


def test_dissolve_steps_evenly_from_one_chain_to_the_other() -> None:
    black, white = np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 255, np.uint8)
    assert [int(f[0, 0, 0]) for f in dissolve([black] * 3, [white] * 3)] == [64, 128, 191]


def test_warmup_lasts_until_the_cold_start_has_faded() -> None:
    fading = FlowSettings(hold=False)
    assert warmup_frames(replace(fading, blend=0.5)) == 7  # 0.5 ** 7 < 1 %
    assert warmup_frames(replace(fading, blend=1.0)) == 0  # no carry, no memory
    assert warmup_frames(replace(fading, blend=0.0)) == MAX_WARMUP
    assert warmup_frames(FlowSettings(carry="frame", blend=0.5)) == 7  # the hold is for the carried residual
    assert warmup_frames(FlowSettings()) == warmup_frames(FlowSettings(blend=0.5)) == HELD_WARMUP  # its pattern develops


def test_gpu_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_gpus(None) is None and parse_gpus("none") == [] and parse_gpus("0, 2") == ["0", "2"]
    with pytest.raises(SettingsError, match="empty entry"):
        parse_gpus("0,,1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert visible_gpus() == ["1", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


# -- the manifest --------------------------------------------------------------------------------------
def test_malformed_toml_names_line_and_column(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, '[[job]]\ninput = "a.mp4\n')
    with pytest.raises(ManifestError, match=r"malformed TOML: .*line 9, column 15"):
        load_manifest(path)


def test_a_job_becomes_the_argv_of_its_command(tmp_path: Path, clip: Path) -> None:
    os.symlink(clip, tmp_path / "in.mp4")
    path = write_manifest(tmp_path, """
[[job]]
name = "pan"
input = "in.mp4"
output = "a.mp4"
keep_work = true
max-size = 100
no_audio = false
segments = 2

[[job]]
mode = "image"
preset = "tutorial"
input = "in.mp4"
output = "still.png"
""", defaults=DEFAULTS + 'start = 0.5\n')
    first, second = load_manifest(path).jobs
    assert first.argv[:3] == ("video", str(tmp_path / "in.mp4"), str(tmp_path / "a.mp4"))
    assert {"--weights=none", f"--layers={SMALL_LAYERS}", "--octaves=1", "--keep-work", "--max-size=100",
            "--start=0.5"} <= set(first.argv)
    assert "--no-audio" not in first.argv
    assert (first.name, first.line, first.frames, first.fps, first.segments) == ("pan", 10, 18, FPS, 2)
    assert first.warmup == warmup_frames(FlowSettings())
    assert first.work_dir == str(tmp_path / "a.mp4.ddwork") and first.segmentable
    # the image job: [defaults] keys image has no use for (start) are left out; its preset replaces the default layers
    assert "--preset=tutorial" in second.argv and not any(a.startswith(("--layers", "--start")) for a in second.argv)
    assert (second.name, second.line) == ("still.png", 19)


def test_a_switch_with_an_off_form_is_set_either_way(tmp_path: Path, clip: Path) -> None:
    """jit = true asks for --jit and jit = false for --no-jit, as on the command line."""
    path = write_manifest(tmp_path, f"""
[[job]]
input = "{clip}"
output = "on.mp4"
jit = true

[[job]]
input = "{clip}"
output = "off.mp4"
jit = false
""")
    on, off = load_manifest(path).jobs
    assert "--jit" in on.argv and "--no-jit" not in on.argv
    assert "--no-jit" in off.argv and "--jit" not in off.argv


def test_every_problem_is_reported_with_job_and_line_and_nothing_starts(tmp_path: Path, clip: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    os.symlink(clip, tmp_path / "in.mp4")
    path = write_manifest(tmp_path, """
[[job]]
input = "in.mp4"
output = "a.mp4"
octave = 2

[[job]]
input = "missing.mp4"
output = "b.mp4"

[[job]]
input = "in.mp4"
output = "c.mp4"
layers = "mixed2=1.0,mixed99=1.0"

[[job]]
input = "in.mp4"
output = "a.mp4"
flow = "magic"
""")
    problems = problems_of(path)
    assert len(problems) == 5, problems
    assert problems[0].startswith(f"{path}:12: job 1: unknown key 'octave'") and "did you mean 'octaves'" in problems[0]
    assert problems[1].startswith(f"{path}:15: job 2: input not found: {tmp_path / 'missing.mp4'}")
    assert problems[2].startswith(f"{path}:21: job 3: unknown layer 'mixed99'") and "mixed10" in problems[2]
    assert problems[3].startswith(f"{path}:23: job 4: output {tmp_path / 'a.mp4'} is also written by job 1 (line 9)")
    assert problems[4].startswith(f"{path}:26: job 4: argument --flow: invalid choice: 'magic'")
    assert main(["batch", str(path)]) == 1  # the CLI: one error, exit 1, nothing made
    assert "5 problems, nothing was started" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "jobs.toml"]


def test_a_problem_two_settings_find_is_reported_once(tmp_path: Path, clip: Path) -> None:
    """A broken strength schedule is read by the dream's settings and its schedule: one line, beside the job's
    other problems."""
    os.symlink(clip, tmp_path / "in.mp4")
    path = write_manifest(tmp_path, """
[[job]]
input = "in.mp4"
output = "a.mp4"
strength = "0:(1), 1s:(2"
max_size = 8
""")
    problems = problems_of(path)
    assert len(problems) == 2, problems
    assert "--strength: unclosed '('" in problems[0] and "--max-size must be at least 16 pixels" in problems[1]


def test_layer_weights_are_checked_against_the_objective_before_anything_runs(tmp_path: Path, clip: Path) -> None:
    os.symlink(clip, tmp_path / "in.mp4")
    path = write_manifest(tmp_path, """
[[job]]
input = "in.mp4"
output = "a.mp4"
layers = "mixed2"
layer_weights = "mixed3=1"
""")
    assert list(problems_of(path)) == [f"{path}:13: job 1: --layer-weights names mixed3, which is not in the "
                                       "objective (mixed2); add it to --layers"]


def test_a_schedule_leaving_its_range_mid_clip_is_found_before_anything_runs(tmp_path: Path, clip: Path) -> None:
    """As the command would find it: the job's frames are known from its clip (video) or its settings (zoom)."""
    os.symlink(clip, tmp_path / "in.mp4")
    path = write_manifest(tmp_path, """
[[job]]
input = "in.mp4"
output = "a.mp4"
strength = "0:(1), 4:(-1)"

[[job]]
mode = "zoom"
output = "z.mp4"
size = "64x64"
frames = 6
layers = "mixed2"
layer_weights = "mixed2=0:(1), 5:(1/(t-5))"

[[job]]
input = "in.mp4"
output = "b.mp4"
strength = "0:(1), 4:(2)"
""")
    problems = problems_of(path)
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"{path}:12: job 1: --strength is 0 at frame 2")
    assert problems[1].startswith(f"{path}:20: job 2: --layer-weights mixed2 is not a finite number")


def test_a_guide_is_checked_like_the_inputs(tmp_path: Path, clip: Path) -> None:
    os.symlink(clip, tmp_path / "in.mp4")
    (tmp_path / "guides").mkdir()
    write_image(str(tmp_path / "guides" / "stripes.png"), textured_image(120, 120, seed=4))
    write_image(str(tmp_path / "small.png"), textured_image(30, 30, seed=4))
    (tmp_path / "notes.png").write_text("not a picture")
    jobs = """
[[job]]
input = "in.mp4"
output = "{name}.mp4"
guide = "{guide}"
"""
    path = write_manifest(tmp_path, jobs.format(name="a", guide="guides/stripes.png"), defaults=DEFAULTS + 'guide = "missing.png"\n')
    job, = load_manifest(path).jobs  # the job's guide replaces the default one; relative to the manifest's folder
    assert f"--guide={tmp_path / 'guides' / 'stripes.png'}" in job.argv
    path = write_manifest(tmp_path, "".join(jobs.format(name=n, guide=g) for n, g in
                                            (("a", "missing.png"), ("b", "notes.png"), ("c", "small.png"))))
    problems = problems_of(path)
    assert len(problems) == 3, problems
    assert problems[0].startswith(f"{path}:12: job 1: --guide: input not found: {tmp_path / 'missing.png'}")
    assert problems[1].startswith(f"{path}:17: job 2: --guide: not a readable image: {tmp_path / 'notes.png'}")
    # mixed3 of the defaults' objective needs 43 px with the default recipe's whole picture (no border dropped)
    assert problems[2].startswith(f"{path}:22: job 3: --guide: the guide picture is 30x30 as the dream uses "
                                  "it (a large one is scaled down), too small for this objective")


def test_a_job_may_not_write_over_an_input(tmp_path: Path, clip: Path) -> None:
    (tmp_path / "clips").mkdir()
    os.symlink(clip, tmp_path / "clips" / "in.mp4")
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"")
    path = write_manifest(tmp_path, """
[[job]]
input = "clips/in.mp4"
output = "clips/in.mp4"

[[job]]
input = "clips/in.mp4"
output = "out.mp4"
work_dir = "clips"

[[job]]
mode = "image"
input = "a.png"
output = "new/b.png"

[[job]]
mode = "image"
input = "b.png"
output = "a.png"
""")
    problems = problems_of(path)
    assert len(problems) == 3, problems
    assert problems[0].startswith(f"{path}:11: job 1: output {tmp_path / 'clips' / 'in.mp4'} is the input file: "
                                  "writing it would destroy the source")
    assert problems[1].startswith(f"{path}:16: job 2: work folder {tmp_path / 'clips'} holds the input")
    assert problems[2].startswith(f"{path}:23: job 4: output {tmp_path / 'a.png'} is the input file") \
        and problems[2].endswith("(the input of job 3 (line 18))")


def test_outputs_and_work_folders_that_cannot_be_written_fail_the_check(tmp_path: Path, clip: Path) -> None:
    """Tests run as root, whom permission bits do not stop: /proc takes no files, and a file cannot hold a folder.
    A folder made read-only counts too where the tests run as another user."""
    (tmp_path / "notes.txt").write_text("a file\n")
    (tmp_path / "readonly").mkdir(mode=0o555)
    path = write_manifest(tmp_path, f"""
[[job]]
input = "{clip}"
output = "/proc/x.mp4"

[[job]]
input = "{clip}"
output = "notes.txt/out/x.mp4"

[[job]]
input = "{clip}"
output = "ok.mp4"
work_dir = "/proc/work"

[[job]]
input = "{clip}"
output = "readonly/x.mp4"
""")
    lines = path.read_text().splitlines()

    def at(text: str) -> str:
        return f"{path}:{lines.index(text) + 1}: "

    problems = problems_of(path)
    assert problems[:3] == (
        at('output = "/proc/x.mp4"') + "job 1: output folder /proc is not writable (no files can be made there); "
                                       "fix its permissions or choose another output path",
        at('output = "notes.txt/out/x.mp4"') + f"job 2: output folder {tmp_path / 'notes.txt' / 'out'} cannot be "
                                               f"created: {tmp_path / 'notes.txt'} is a file; choose another output path",
        at('work_dir = "/proc/work"') + "job 3: work folder /proc/work cannot be created: /proc is not writable "
                                        "(no files can be made there); choose another --work-dir",
    )
    if os.geteuid() != 0:
        assert problems[3].startswith(at('output = "readonly/x.mp4"') + "job 4: output folder ")
        assert "readonly is not writable (Permission denied)" in problems[3]
    assert len(problems) == (3 if os.geteuid() == 0 else 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.toml", "notes.txt", "readonly"]  # nothing started


def test_batch_makes_the_output_folders_it_needs(tmp_path: Path, clip: Path, small_net: str) -> None:
    """The README's manifest writes to out/...: folders that do not exist yet are made, not refused."""
    write_image(tmp_path / "still.png", textured_image(120, 140))
    (tmp_path / "blocked").write_text("a file where a folder would go\n")
    path = write_manifest(tmp_path, f"""
[[job]]
input = "{clip}"
output = "out/clips/pan.mp4"
end = 0.5

[[job]]
mode = "image"
input = "still.png"
output = "out/stills/deeper/still.png"
""", defaults=net_defaults(small_net))
    summary = run_batch(load_manifest(path), gpus=[])
    assert [(r.status, r.frames) for r in summary.results] == [("done", 6), ("done", 1)], summary.results
    assert probe_video(tmp_path / "out" / "clips" / "pan.mp4").n_frames == 6
    assert (tmp_path / "out" / "stills" / "deeper" / "still.png").is_file()
    blocked = write_manifest(tmp_path, '[[job]]\ninput = "still.png"\nmode = "image"\noutput = "blocked/x.png"\n',
                             name="blocked.toml")
    with pytest.raises(ManifestError, match=r"blocked.toml:\d+: job 1: output folder .*blocked is a file, not a folder"):
        load_manifest(blocked)


# -- running -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_jobs(tmp_path_factory: pytest.TempPathFactory, clip: Path, small_net: str) -> tuple[Path, int]:
    """A video job in two segments that finishes and an image job whose input is no image, run through the CLI."""
    folder = tmp_path_factory.mktemp("batch")
    (folder / "out").mkdir()
    (folder / "broken.png").write_bytes(b"not a png")
    path = write_manifest(folder, f"""
[[job]]
name = "pan"
input = "{clip}"
output = "out/pan.mp4"
segments = 2
blend = 0.5  # 7 warm-up frames: the second segment starts cold at frame 1, its 4-frame bridge at 8
step = 20.0  # a still's step: the seam measured with the strongest per-frame change

[[job]]
mode = "image"
input = "broken.png"
output = "out/broken.png"
""", defaults=net_defaults(small_net))
    return path, main(["batch", str(path), "-q"])


def test_a_failing_job_does_not_stop_the_other(two_jobs: tuple[Path, int]) -> None:
    path, status = two_jobs
    assert status == 1
    summary = json.loads(path.with_name("jobs.summary.json").read_text())
    pan, broken = summary["jobs"]
    assert (pan["status"], pan["frames"], pan["dreamed"], pan["error"]) == ("done", 24, 24, None)
    assert (pan["loads"], broken["loads"]) == (1, 0)  # one worker: the second segment reuses the network
    assert broken["status"] == "failed" and "not a readable image" in broken["error"] and broken["line"] == 18
    assert summary["finished"] and sorted(os.listdir(path.parent / "out")) == ["pan.mp4"]  # no work folder left


def test_segments_join_into_the_whole_clip_with_a_clean_seam(two_jobs: tuple[Path, int], clip: Path) -> None:
    output = two_jobs[0].parent / "out" / "pan.mp4"
    source, frames = decode(clip), decode(output)
    assert len(frames) == len(source) == probe_video(output).n_frames == 24
    errors = pair_errors(source, frames)
    # segment 1 is frames 0-11, segment 2 12-23; frames 8-11 dissolve one into the other
    across = errors[7:12]  # pairs (7, 8) ... (11, 12): the two joins and the bridge between them
    inside = float(np.mean(errors[:7] + errors[12:]))
    print(f"E_warp across the joins: max {max(across):.6f} (" + " ".join(f"{e:.6f}" for e in across)
          + f"), inside segments {inside:.6f}, ratio {max(across) / inside:.3f}")
    assert max(across) <= 1.2 * inside


def test_join_copies_the_segments_and_adds_the_audio(tmp_path: Path) -> None:
    segments = [pan_clip(tmp_path / "0.mkv", frames=5), pan_clip(tmp_path / "1.mkv", frames=4)]
    source = pan_clip(tmp_path / "source.mp4", frames=9, audio=True)
    join_segments([str(s) for s in segments], str(tmp_path / "joined.mp4"), audio_from=str(source), duration=9 / FPS)
    joined = decode(tmp_path / "joined.mp4")
    expected = decode(segments[0]) + decode(segments[1])
    assert len(joined) == 9 and all(np.array_equal(a, b) for a, b in zip(joined, expected))  # bit-exact: no re-encode
    assert probe_video(tmp_path / "joined.mp4").audio_codec == "aac"


def test_rerun_after_a_kill_resumes_and_then_skips(tmp_path: Path, small_net: str) -> None:
    pan_clip(tmp_path / "long.mp4", frames=24)
    path = write_manifest(tmp_path, '[[job]]\ninput = "long.mp4"\noutput = "out.mp4"\niterations = 2\n',
                          defaults=net_defaults(small_net))
    frames = tmp_path / "out.mp4.ddwork" / "frames"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    batch = subprocess.Popen([sys.executable, "-m", "ddvideo.cli", "batch", str(path), "-q"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while finished_frames(frames) < 3:  # frame files appearing, while the batch runs
            assert batch.poll() is None, "the batch ended before it could be killed"
            time.sleep(0.02)
    finally:
        os.killpg(batch.pid, signal.SIGKILL)  # the batch and its worker, mid-render
        batch.wait()
    kept = finished_frames(frames)
    assert 3 <= kept < 24 and not (tmp_path / "out.mp4").exists()
    assert json.loads((tmp_path / "jobs.summary.json").read_text())["jobs"][0]["status"] == "pending"

    (resumed,) = run_batch(load_manifest(path)).results
    assert (resumed.status, resumed.frames, resumed.dreamed) == ("done", 24, 24 - kept)
    assert len(decode(tmp_path / "out.mp4")) == 24 and not frames.parent.exists()

    (again,) = run_batch(load_manifest(path)).results
    assert (again.status, again.frames, again.dreamed) == ("skipped", 24, 0)


def kill_the_holder_once(work: Path, done: threading.Event, killed: list[int]) -> None:
    """SIGKILL the process holding the work folder `work` (a batch worker) once it has finished 2 frames."""
    while not done.is_set():
        if finished_frames(work / "frames") >= 2:
            killed.append(json.loads((work / LOCK_NAME).read_text())["pid"])
            os.kill(killed[0], signal.SIGKILL)
            return
        time.sleep(0.02)


def run_killing_a_worker_once(path: Path, **options) -> tuple:
    """Run the batch of `path`, its only job's worker killed once mid-render; (the job's result, the killed pid)."""
    done, killed = threading.Event(), []
    watcher = threading.Thread(target=kill_the_holder_once, args=(path.parent / "out.mp4.ddwork", done, killed),
                               daemon=True)
    watcher.start()
    try:
        summary = run_batch(load_manifest(path), **options)
    finally:
        done.set()
        watcher.join()
    assert killed and killed[0] != os.getpid()
    (result,) = summary.results
    assert (result.status, result.frames) == ("done", 24) and result.dreamed < 24  # the retry resumed
    assert len(result.retries) == 1
    record = json.loads((path.parent / "jobs.summary.json").read_text())["jobs"][0]
    assert record["retries"] == list(result.retries)
    table = format_summary(summary).splitlines()
    assert table[0].split() == ["job", "status", "frames", "time", "retries", "output", "/", "error"]
    assert table[1].split()[2:4] == ["done", "24"] and table[1].split()[5] == "1"
    assert table[2] == f"  job 1 retry 1: {result.retries[0]}"
    return result, killed[0]


def test_a_worker_killed_once_is_retried_and_the_summary_says_so(tmp_path: Path, small_net: str) -> None:
    pan_clip(tmp_path / "in.mp4", frames=24)
    path = write_manifest(tmp_path, '[[job]]\ninput = "in.mp4"\noutput = "out.mp4"\niterations = 2\n',
                          defaults=net_defaults(small_net))
    result, _ = run_killing_a_worker_once(path, gpus=[])
    assert result.retries == ("its worker process (CPU) was killed by SIGKILL",)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance with one CPU (one worker actor) for the Ray tests: starting Ray takes seconds."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_a_ray_worker_killed_once_is_retried_and_the_summary_says_so(tmp_path: Path, local_ray, small_net: str) -> None:
    pan_clip(tmp_path / "in.mp4", frames=24)
    path = write_manifest(tmp_path, '[[job]]\ninput = "in.mp4"\noutput = "out.mp4"\niterations = 2\n',
                          defaults=net_defaults(small_net))
    result, _ = run_killing_a_worker_once(path, ray="auto")
    assert re.fullmatch(r"its Ray worker \(\S+\) died; Ray restarted the worker and it resumed from its frames",
                        result.retries[0]), result.retries


@pytest.mark.parametrize("segments", [1, 2])
def test_a_job_another_render_holds_is_running_elsewhere(tmp_path: Path, clip: Path, segments: int) -> None:
    path = write_manifest(tmp_path, f'[[job]]\ninput = "{clip}"\noutput = "out.mp4"\nsegments = {segments}\n')
    with WorkLock(str(tmp_path / "out.mp4.ddwork"), output="out.mp4"):  # a render elsewhere: a command, a batch
        summary = run_batch(load_manifest(path), gpus=[])
    (result,) = summary.results
    assert result.status == "running elsewhere" and f"by process {os.getpid()} on " in result.error
    assert not summary.failed and not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.mp4.ddwork").exists()
    assert json.loads((tmp_path / "jobs.summary.json").read_text())["jobs"][0]["status"] == "running elsewhere"
    assert format_summary(summary).endswith(f"1 jobs: 1 running elsewhere; results in {summary.path}")


def test_batch_on_a_local_ray_instance(tmp_path: Path, local_ray, small_net: str) -> None:
    pan_clip(tmp_path / "a.mp4", frames=8)
    path = write_manifest(tmp_path, """
[[job]]
input = "a.mp4"
output = "a.out.mp4"

[[job]]
input = "a.mp4"
output = "b.out.mkv"
iterations = 2
""", defaults=net_defaults(small_net))
    summary = run_batch(load_manifest(path), ray="auto")  # one worker actor, both jobs in turn
    assert [(r.status, r.frames) for r in summary.results] == [("done", 8), ("done", 8)], summary.results
    assert [r.loads for r in summary.results] == [1, 0]  # the actor kept the network for the second job
    assert all(r.where for r in summary.results)  # the node each ran on
    assert len(decode(tmp_path / "b.out.mkv")) == 8
    assert json.loads(Path(summary.path).read_text())["finished"]
