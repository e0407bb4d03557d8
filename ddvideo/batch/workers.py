"""Where units run: one worker process per local GPU, or Ray actors of one GPU each on a cluster."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import re
import shutil
import signal
import subprocess
from collections import Counter, deque
from typing import Callable

from ..errors import DDVideoError, SettingsError
from .units import EVENT_EVERY_S, Unit, UnitResult, run_unit

MAX_RETRIES = 3  # a unit whose worker process dies is run again this many times (it resumes from its frames)


def parse_gpus(text: str | None) -> list[str] | None:
    """--gpus: None = every visible GPU, "none" = one CPU worker, "0,2" = those devices."""
    if text is None:
        return None
    if text.strip().lower() in ("none", "cpu"):
        return []
    ids = [g.strip() for g in text.split(",")]
    if not all(ids):
        raise SettingsError(f"--gpus {text!r} has an empty entry: give ids as nvidia-smi numbers them (0,1) or none")
    return ids


def visible_gpus() -> list[str]:
    """GPU ids of this machine: CUDA_VISIBLE_DEVICES when set, else nvidia-smi's list; [] when neither has any."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = []
        for gpu in (g.strip() for g in env.split(",")):
            if not gpu or gpu.startswith("-"):  # CUDA stops at the first invalid id
                break
            ids.append(gpu)
        return ids
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        listing = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return re.findall(r"^GPU (\d+):", listing, re.M)


# -- local workers: one process per GPU ----------------------------------------------------------------
def _interrupt(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second signal must not cut the clean-up short
    raise KeyboardInterrupt  # the render unwinds as on Ctrl-C: finished frames kept, temporaries removed


def _worker_main(slot: int, device: str | None, inbox, outbox) -> None:
    """A worker process: pinned to `device` before TensorFlow loads, it renders the units it is handed."""
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device  # "" = no GPU
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the batch, which stops its workers with SIGTERM
    from ..tf_setup import import_tensorflow_quietly

    import_tensorflow_quietly()
    parent = os.getppid()

    def alive() -> bool:
        return os.getppid() == parent

    where = f"GPU {device}" if device else "CPU"
    with contextlib.suppress(KeyboardInterrupt):
        while alive():
            try:
                unit = inbox.get(timeout=1.0)
            except queue.Empty:
                continue
            if unit is None:
                return
            outbox.put(("start", slot, unit.key, where))
            outbox.put(("result", slot, run_unit(unit, emit=outbox.put, alive=alive, where=where)))


class _Worker:
    def __init__(self, ctx, slot: int, device: str | None, outbox):
        self.ctx, self.slot, self.device, self.outbox = ctx, slot, device, outbox
        self.unit: Unit | None = None
        self.process = None
        self.where = f"GPU {device}" if device else "CPU"

    def give(self, unit: Unit) -> None:
        if self.process is None or not self.process.is_alive():
            self.inbox = self.ctx.Queue()
            self.process = self.ctx.Process(target=_worker_main, name=f"ddvideo-batch-{self.slot}", daemon=True,
                                            args=(self.slot, self.device, self.inbox, self.outbox))
            self.process.start()
        self.unit = unit
        self.inbox.put(unit)

    def stop(self, *, interrupt: bool) -> None:
        if self.process is None:
            return
        if interrupt:
            self.process.terminate()  # SIGTERM: the render unwinds and keeps its frames
        else:
            self.inbox.put(None)
        self.process.join(timeout=60)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def run_local(units: list[Unit], devices: list[str | None], on_message: Callable[[tuple], None]) -> None:
    """Hand units to one worker process per device as they free up; a unit whose worker dies runs again."""
    if not units:
        return
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: CUDA_VISIBLE_DEVICES is set before TF loads
    outbox = ctx.Queue()
    workers = [_Worker(ctx, slot, device, outbox) for slot, device in enumerate(devices[:len(units)])]
    ready = deque(units)
    deaths: Counter = Counter()
    interrupted = True
    try:
        while ready or any(w.unit for w in workers):
            for worker in workers:
                if worker.unit is None and ready:
                    worker.give(ready.popleft())
            try:
                message = outbox.get(timeout=0.5)
            except queue.Empty:
                for worker in workers:
                    if worker.unit is not None and not worker.process.is_alive():
                        unit, worker.unit = worker.unit, None
                        deaths[unit.key] += 1
                        code = worker.process.exitcode
                        if deaths[unit.key] <= MAX_RETRIES:
                            ready.appendleft(unit)  # it resumes from its work folder
                            on_message(("retry", unit.key, f"its worker process ({worker.where}) {_death(code)}"))
                        else:
                            on_message(("result", worker.slot, UnitResult(
                                unit.key, False, error=f"the worker process died {deaths[unit.key]} times "
                                                       f"(last exit code {code}); out of memory?")))
                continue
            if message[0] == "result":
                workers[message[1]].unit = None
            on_message(message)
        interrupted = False
    finally:
        for worker in workers:
            worker.stop(interrupt=interrupted)


def _death(code: int | None) -> str:
    """How a worker process ended, from its exit code: 'was killed by SIGKILL', 'exited with code 1'."""
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


# -- Ray: actors of one GPU each on a cluster -----------------------------------------------------------
def connect_ray(address: str):
    """(ray, worker slots, whether workers take a GPU, whether we started the connection)."""
    try:
        import ray
    except ImportError:
        raise SettingsError("--ray needs Ray: pip install 'ddvideo[ray]'") from None
    owned = not ray.is_initialized()
    if owned:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise DDVideoError(f"cannot connect to the Ray cluster at {address} ({exc}); "
                               "start it with `ray start --head`, or give its address") from None
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    return ray, gpus or max(1, int(resources.get("CPU", 1))), gpus > 0, owned


class _QueueEmit:
    """Worker reports through a Ray queue; a lost report never stops a render."""

    def __init__(self, events):
        self.events = events

    def __call__(self, message: tuple) -> None:
        with contextlib.suppress(Exception):
            self.events.put(message, block=False)


class _RayWorker:
    """A Ray actor: one process, pinned to its GPU for life, rendering the units it is handed one after another
    and keeping their networks between them (ddvideo.reuse)."""

    def run(self, unit: Unit, events) -> UnitResult:
        import ray

        gpu_ids = ray.get_gpu_ids()
        where = ray.util.get_node_ip_address() + (f" GPU {','.join(map(str, gpu_ids))}" if gpu_ids else "")
        emit = _QueueEmit(events)
        emit(("start", None, unit.key, where))
        return run_unit(unit, emit=emit, where=where)


def run_ray(ray, units: list[Unit], use_gpus: bool, on_message: Callable[[tuple], None], *, slots: int) -> None:
    """Start one worker actor per slot (a GPU each where the cluster has GPUs) and hand each the next unit as it
    finishes one, so a network is loaded once per worker rather than once per job. Ray restarts a worker that
    dies and runs its unit again (it resumes from its frames)."""
    if not units:
        return
    from ray.util.queue import Queue

    events = Queue()
    options = {"num_gpus": 1} if use_gpus else {"num_cpus": 1}
    actor = ray.remote(max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES, **options)(_RayWorker)
    workers = [actor.remote() for _ in range(min(slots, len(units)))]
    ready = deque(units)
    pending: dict = {}  # task -> (unit, worker)

    def give(worker) -> None:
        unit = ready.popleft()
        pending[worker.run.remote(unit, events)] = (unit, worker)

    starts: dict[str, str | None] = {}  # unit -> where it last started

    def drain() -> None:
        with contextlib.suppress(Exception):
            for message in events.get_nowait_batch(events.qsize()):
                if message[0] == "start":  # a second start: Ray restarted its dead worker and ran it again
                    key, where = message[2], message[3]
                    if key in starts:
                        on_message(("retry", key, f"its Ray worker ({starts[key] or 'a node'}) died; Ray restarted "
                                                  "the worker and it resumed from its frames"))
                    starts[key] = where
                on_message(message)

    try:
        for worker in workers[:len(ready)]:
            give(worker)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=EVENT_EVERY_S)
            drain()
            for ref in done:
                unit, worker = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    result = UnitResult(unit.key, False, error=f"the Ray worker failed ({first[:200]})")
                    if isinstance(exc, ray.exceptions.RayActorError):  # restarts used up: give it no more
                        workers.remove(worker)
                        worker = None
                on_message(("result", None, result))
                if ready and worker is not None:
                    give(worker)
            if ready and not pending:  # every worker is gone
                for unit in ready:
                    on_message(("result", None, UnitResult(unit.key, False, error="every Ray worker died")))
                ready.clear()
    finally:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        for worker in workers:
            with contextlib.suppress(Exception):
                ray.kill(worker)
        with contextlib.suppress(Exception):
            events.shutdown()
