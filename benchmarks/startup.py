"""The start-up and batch-reuse sections of bench.py: whole processes timed as a user runs them, against the Keras
example run as a script, and where a process's start-up time goes.

Run by bench.py (`--sections startup,batch`); `python benchmarks/startup.py --child KIND WEIGHTS PICTURE` is the
fresh process that times the pieces of one start-up and prints them as JSON.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
BATCH_SIZES = ((256, 256), (360, 384), (360, 540))  # (H, W): the still sizes of the batch section


def median(values: list[float]) -> float:
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def sample_picture(path: Path, height: int, width: int, *, index: int = 0) -> Path:
    """One of the sample photos (a different crop for each index), scaled to fill (height, width), as a PNG."""
    import cv2

    name = ("chelsea.png", "coffee.png")[index % 2]
    photo = cv2.imread(str(ROOT / "samples" / name))
    if index // 2 % 2:
        photo = photo[:, ::-1]  # mirrored: another picture for the dream
    scale = max(height / photo.shape[0], width / photo.shape[1])
    resized = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    cv2.imwrite(str(path), resized[top : top + height, left : left + width])
    return path


def _environment() -> dict[str, str]:
    """Children import this checkout's ddvideo, as `pip install -e .` would."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def timed_process(argv: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole process and the processes it waited for, start to exit; a failure raises
    with its last lines of stderr. CPU time (user + system) counts the work done whatever else the machine runs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tick = time.perf_counter()
    done = subprocess.run(argv, env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - tick
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _ddvideo(*args: str) -> list[str]:
    return [sys.executable, "-m", "ddvideo.cli", *args, "-q"]


# -- the pieces of one start-up, in a fresh process -----------------------------------------------------------
def child(kind: str, weights: str, picture: str) -> None:
    """Time each piece of a start-up (kind "ddvideo" or "keras") up to the second dream, in wall and CPU seconds
    (all threads); print them as one JSON line."""
    began, cpu_began = time.perf_counter(), time.process_time()
    marks: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = time.perf_counter() - began - sum(marks.values())
        cpu[name] = time.process_time() - cpu_began - sum(cpu.values())

    if kind == "ddvideo":
        from ddvideo.tf_setup import import_tensorflow_quietly as _import_tensorflow_quietly

        _import_tensorflow_quietly()
        from ddvideo.dream import Dreamer, DreamSettings
        from ddvideo.media import read_image
        from ddvideo.models import ModelSettings, load_model

        mark("import")
        loaded = load_model(ModelSettings(weights=weights))
        mark("load")
        dreamer = Dreamer(loaded, DreamSettings())
        mark("prepare")
        frame = read_image(picture)
        dreamer.dream(frame)
        mark("first")
        dreamer.dream(frame)
        mark("second")
    else:
        import keras

        sys.path.insert(0, str(HERE))
        from keras_reference import KerasExampleDream

        mark("import")
        file = weights not in ("imagenet", "none")
        model = keras.applications.InceptionV3(weights=None if file or weights == "none" else "imagenet", include_top=False)
        if file:
            model.load_weights(weights)
        mark("load")
        dream = KerasExampleDream(model, {"mixed4": 1.0, "mixed5": 1.5, "mixed6": 2.0, "mixed7": 2.5})
        image = keras.utils.img_to_array(keras.utils.load_img(picture)).astype("uint8")
        mark("prepare")
        dream.dream(image)
        mark("first")
        dream.dream(image)
        mark("second")
    print("RESULT " + json.dumps({**marks, **{f"cpu_{k}": v for k, v in cpu.items()}}), flush=True)


def _child_pieces(kind: str, weights: str, picture: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--child", kind, weights, str(picture)], env=_environment(),
                          capture_output=True, text=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"start-up child {kind} failed: {done.stderr.strip()[-500:]}")
    return json.loads(line[7:])


# -- sections -----------------------------------------------------------------------------------------------
def bench_startup(args, folder: Path, precision: str) -> tuple[list[str], float]:
    """Whole `ddvideo image` processes against the Keras example script on one 384x360 photo, alternating, and
    the pieces of each start-up; returns the rows and ddvideo's time over the script's (defaults)."""
    picture = sample_picture(folder / "still.png", 360, 384)
    out = str(folder / "out.png")
    rounds = 1 if args.quick else 3
    keras = [sys.executable, str(HERE / "keras_reference.py"), str(picture), out, "--weights", args.weights]
    commands = {
        "Keras example script (float32)": keras,
        f"`ddvideo image`, defaults (precision auto = {precision})": _ddvideo("image", str(picture), out, "--weights", args.weights),
        "`ddvideo image --precision float32`": _ddvideo("image", str(picture), out, "--weights", args.weights,
                                                        "--precision", "float32"),
    }
    times: dict[str, list[float]] = {label: [] for label in commands}
    cpu: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(rounds):  # alternating, so a busy moment of the machine hits each alike
        for label, argv in commands.items():
            wall, used = timed_process(argv)
            times[label].append(wall)
            cpu[label].append(used)
    base, cpu_base = median(times[next(iter(commands))]), median(cpu[next(iter(commands))])
    rows = ["| whole process | s (median) | runs | vs the Keras script | CPU s (median) | CPU vs the Keras script |",
            "|---|---|---|---|---|---|"]
    for label, values in times.items():
        rows.append(f"| {label} | {median(values):.2f} | {', '.join(f'{v:.1f}' for v in values)} | "
                    f"{median(values) / base:.2f}x | {median(cpu[label]):.1f} | {median(cpu[label]) / cpu_base:.2f}x |")
    ratio = median(times[list(commands)[1]]) / base

    pieces: dict[str, list[dict[str, float]]] = {"keras": [], "ddvideo": []}
    for _ in range(rounds):
        for kind in pieces:
            pieces[kind].append(_child_pieces(kind, args.weights, picture))
    names = {"import": "import TensorFlow and Keras", "load": "build the model and load its weights",
             "prepare": "ddvideo: cut, fold and cast the network, objective; Keras: extractor",
             "first": "first dream (tracing and graph optimisation included)", "second": "second dream (the dream alone)"}
    rows += ["", "| piece | Keras example s | ddvideo (defaults) s | Keras example CPU s | ddvideo CPU s |",
             "|---|---|---|---|---|"]
    for key, label in names.items():
        cells = [median([p[prefix + key] for p in pieces[kind]]) for prefix in ("", "cpu_") for kind in pieces]
        rows.append(f"| {label} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    ready = [median([sum(p[prefix + k] for k in ("import", "load", "prepare", "first")) for p in pieces[kind]])
             for prefix in ("", "cpu_") for kind in pieces]
    rows.append("| **first picture ready** (sum of the above, per run) | " + " | ".join(f"{c:.2f}" for c in ready) + " |")
    rows.append(f"\n384x360 photo (samples/chelsea.png, scaled), keras preset (mixed4..mixed7), 3 octaves x 30 "
                f"iterations, max loss 15, weights {args.weights}; ddvideo in its default precision ({precision} here) "
                f"and in float32. Whole processes: {rounds} rounds, the three commands alternating, median. Pieces: "
                f"the same work in one fresh process per run ({rounds} each, alternating), median per piece. CPU s: "
                f"user + system time of all threads, which what else the machine runs changes much less than wall time.")
    print("\n".join(rows), flush=True)
    return rows, ratio


def bench_batch(args, folder: Path) -> tuple[list[str], float]:
    """12 stills in 3 sizes: one `ddvideo batch` against 12 separate `ddvideo image` processes, alternating."""
    per_size = 1 if args.quick else 4
    rounds = 1 if args.quick else 3
    stills = [sample_picture(folder / f"still{len(BATCH_SIZES) * i + k}.png", h, w, index=i)
              for i in range(per_size) for k, (h, w) in enumerate(BATCH_SIZES)]
    outputs = [folder / f"{p.stem}.out.png" for p in stills]
    manifest = folder / "stills.toml"
    jobs = "".join(f'\n[[job]]\ninput = "{p.name}"\noutput = "{o.name}"\n' for p, o in zip(stills, outputs))
    manifest.write_text(f'[defaults]\nmode = "image"\nweights = "{args.weights}"\n{jobs}')
    summary = manifest.with_suffix(".summary.json")
    times: dict[str, list[float]] = {"separate": [], "batch": []}
    cpu: dict[str, list[float]] = {"separate": [], "batch": []}
    loads = []
    for _ in range(rounds):
        runs = [timed_process(_ddvideo("image", str(p), str(o), "--weights", args.weights)) for p, o in zip(stills, outputs)]
        times["separate"].append(sum(wall for wall, _ in runs))
        cpu["separate"].append(sum(used for _, used in runs))
        for path in [*outputs, summary]:
            path.unlink(missing_ok=True)  # a batch skips finished jobs
        wall, used = timed_process(_ddvideo("batch", str(manifest)))
        times["batch"].append(wall)
        cpu["batch"].append(used)
        loads.append(sum(job["loads"] for job in json.loads(summary.read_text())["jobs"]))
    separate, batch = median(times["separate"]), median(times["batch"])
    cpu_separate, cpu_batch = median(cpu["separate"]), median(cpu["batch"])
    count = len(stills)
    sizes = ", ".join(f"{w}x{h}" for h, w in BATCH_SIZES)
    rows = ["| how | s (median) | runs | s per still | vs separate runs | CPU s (median) | CPU vs separate runs |",
            "|---|---|---|---|---|---|---|",
            f"| {count} separate `ddvideo image` processes | {separate:.1f} | "
            f"{', '.join(f'{v:.1f}' for v in times['separate'])} | {separate / count:.2f} | 1.00x | {cpu_separate:.1f} | 1.00x |",
            f"| one `ddvideo batch` of the {count} | {batch:.1f} | {', '.join(f'{v:.1f}' for v in times['batch'])} | "
            f"{batch / count:.2f} | {batch / separate:.2f}x | {cpu_batch:.1f} | {cpu_batch / cpu_separate:.2f}x |",
            f"\n{count} stills ({per_size} each at {sizes}; sample photos cropped and mirrored), `ddvideo image` "
            f"defaults (keras preset, 3 octaves x 30 iterations, precision auto), weights {args.weights}. The batch "
            f"ran on one worker (no GPU) or one per GPU and loaded the network {', '.join(map(str, loads))} time(s) "
            f"per run. {rounds} rounds, separate runs and the batch alternating, median. CPU s: user + system time "
            f"of the processes and their workers."]
    print("\n".join(rows), flush=True)
    return rows, batch / separate


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"] and len(sys.argv) == 5:
        import ddvideo  # noqa: F401  its environment defaults apply before TensorFlow starts, as for a user

        child(*sys.argv[2:])
    else:
        sys.exit("usage: startup.py --child ddvideo|keras WEIGHTS PICTURE (bench.py runs it)")
