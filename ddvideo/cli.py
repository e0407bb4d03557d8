"""The `ddvideo` command line: parse options, run the command, turn errors into one line and an exit status."""

from __future__ import annotations

import signal
import sys
from typing import Any, Callable, Sequence

from .commands import COMMANDS as RENDER_COMMANDS
from .errors import DDVideoError
from .options import PROG, build_parser
from .tf_setup import import_tensorflow_quietly


def cmd_batch(opts: dict[str, Any], progress) -> None:
    from tqdm import tqdm

    from .batch import format_event, format_summary, load_manifest, parse_gpus, run_batch

    manifest = load_manifest(opts["manifest"])

    def report(event) -> None:
        if event.kind == "frames":
            for _ in range(event.frames):
                progress(0, event.total, None)
        elif not opts["quiet"] and (line := format_event(event, len(manifest.jobs))):
            tqdm.write(line, file=sys.stderr)

    summary = run_batch(manifest, gpus=parse_gpus(opts["gpus"]), ray=opts["ray"], segments=opts["segments"],
                        progress=report)
    tqdm.write(format_summary(summary), file=sys.stdout)
    if summary.failed:
        raise DDVideoError(f"{len(summary.failed)} of {len(summary.results)} jobs failed; "
                           f"the table above and {summary.path} say why")


COMMANDS = {**RENDER_COMMANDS, "batch": cmd_batch}  # command name -> what it does with (options, progress)


# -- entry point ----------------------------------------------------------------------------------
def _progress(opts: dict[str, Any]) -> tuple[Callable, Callable[[], None]]:
    """A tqdm bar of frames with the current loss, on stderr; a no-op when quiet."""
    if opts.get("quiet") or opts["command"] in ("layers", "metrics"):
        return (lambda index, total, loss: None), (lambda: None)
    from tqdm import tqdm

    bars: list = []  # made at the first frame, so an early error prints no empty bar

    def update(index: int, total: int | None, loss: float | None) -> None:
        if not bars:
            unit = "tile" if opts["command"] == "sheet" else "frame"
            # the precision chosen, and the frame rate (set by the command once it knows)
            label = ", ".join(filter(None, (_precision_label(opts), opts.get("progress_label"))))
            # an image reports once, when done: no rate to show
            once = opts["command"] == "image"
            form = {"bar_format": "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"} if once else {}
            bars.append(tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, desc=label or None, **form))
        bar = bars[0]
        if total is not None and bar.total != total:
            bar.total = total
        if loss is not None:
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        bar.update(1)

    return update, lambda: bars and bars[0].close()


def _precision_label(opts: dict[str, Any]) -> str | None:
    """The network's dtype for the progress line, e.g. "bfloat16 (auto)"; None for commands without a dream."""
    if "precision" not in opts:
        return None
    from .models import resolve_precision

    chosen = resolve_precision(opts["precision"])
    return f"{chosen} (auto)" if opts["precision"] == "auto" else chosen


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: temporary outputs are removed, finished frames kept


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 user error, 2 malformed options, 130 interrupted)."""
    import_tensorflow_quietly()
    try:
        opts = vars(build_parser().parse_args(argv))
    except SystemExit as exit_:  # --help, or a malformed option (already reported on one line)
        return int(exit_.code or 0)
    if threading_main():
        signal.signal(signal.SIGTERM, _terminate)
    progress, close = _progress(opts)
    try:
        COMMANDS[opts["command"]](opts, progress)
    except DDVideoError as exc:
        close()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        close()
        print(f"{PROG}: interrupted; finished frames are kept: run the same command again to continue", file=sys.stderr)
        return 130
    close()
    return 0


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
