"""The memory section of bench.py: peak memory of one dream at 1080p and 4K, with and without tiles, each in a
fresh process (`python benchmarks/memory.py --child H W TILE WEIGHTS` is that process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import SIZES, memory_gb, timed


# -- 5. peak memory ----------------------------------------------------------------------------------
def memory_child(height: int, width: int, tile: int, weights: str) -> None:
    """Run in a fresh process: build the model, dream one frame with 1 iteration per octave, print JSON."""
    import numpy as np
    import tensorflow as tf

    from ddvideo.dream import Dreamer, DreamSettings
    from ddvideo.models import ModelSettings, load_model

    dreamer = Dreamer(load_model(ModelSettings(weights=weights)), DreamSettings(iterations=1, tile_size=tile, precision="float32"))
    loaded_rss = rss_mb(os.getpid())
    gpu = bool(tf.config.list_physical_devices("GPU"))
    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    seconds = timed(dreamer.dream, frame)[0]
    result = {"seconds": seconds, "loaded_rss_mb": loaded_rss, "peak_rss_mb": rss_mb(os.getpid(), "VmHWM")}
    if gpu:
        result["gpu_peak_mb"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    print("RESULT " + json.dumps(result), flush=True)


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process now (VmRSS) or at its peak (VmHWM), in MB.

    Not ru_maxrss: Linux carries it over from the parent through fork and exec, so a child's would be at least
    the parent's resident memory at the fork."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_child(argv: list[str], *, cap_mb: float, timeout: float) -> dict:
    """Run a memory child, killing it if its resident memory passes `cap_mb` (so it cannot exhaust the machine)."""
    proc = subprocess.Popen([sys.executable, __file__, *argv], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=os.environ.copy())
    began, seen = time.perf_counter(), 0.0
    while proc.poll() is None:
        try:
            seen = max(seen, rss_mb(proc.pid))
        except OSError:
            pass
        if seen > cap_mb or time.perf_counter() - began > timeout:
            proc.kill()
            proc.wait()
            return {"killed": f"stopped at {seen / 1024:.1f} GB" if seen > cap_mb else f"timed out after {timeout:.0f} s"}
        time.sleep(0.05)
    out = proc.stdout.read()
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    return json.loads(line[7:]) if line else {"killed": f"failed (exit {proc.returncode})"}


def bench_memory(args, gpu: bool) -> list[str]:
    cap = args.mem_cap * 1024 if args.mem_cap else 0.8 * memory_gb("MemAvailable") * 1024
    configs = [("1920x1080", 512)] if args.quick else [("1920x1080", 512), ("1920x1080", 0), ("3840x2160", 512), ("3840x2160", 0)]
    head = "| frame | tiling | peak RSS GB | RSS after model load GB | GPU peak GB | s (1 it x 3 octaves) |"
    rows = [head if gpu else head.replace(" GPU peak GB |", ""), "|---|---|---|---|---|---|" if gpu else "|---|---|---|---|---|"]
    for name, tile in configs:
        height, width = SIZES[name]
        r = run_child(["--child", str(height), str(width), str(tile), args.weights], cap_mb=cap, timeout=args.mem_timeout)
        tiling = f"{tile} px tiles" if tile else "off"
        if "killed" in r:
            rows.append(f"| {name} | {tiling} | {r['killed']} | | {'| ' if gpu else ''}|")
        else:
            gpu_cell = f" {r['gpu_peak_mb'] / 1024:.2f} |" if gpu else ""
            rows.append(f"| {name} | {tiling} | {r['peak_rss_mb'] / 1024:.2f} | {r['loaded_rss_mb'] / 1024:.2f} |"
                        f"{gpu_cell} {r['seconds']:.1f} |")
        print(rows[-1], flush=True)
    rows.append(f"\nEach configuration in a fresh process (float32, keras preset, 1 iteration per octave); peak RSS is the "
                f"process's high-water mark (VmHWM). A run is stopped if its RSS passes {cap / 1024:.1f} GB.")
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"] and len(sys.argv) == 6:
        import ddvideo  # noqa: F401  its environment defaults apply before TensorFlow starts, as for a user

        memory_child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        sys.exit("usage: memory.py --child HEIGHT WIDTH TILE WEIGHTS (bench.py runs it)")
