"""Batch renders: a TOML manifest of video, zoom and image jobs, run unattended on every GPU or a Ray cluster."""

from .manifest import Job, Manifest, ManifestError, load_manifest
from .results import BatchEvent, BatchProgress, BatchSummary, JobResult, format_event, format_summary
from .runner import run_batch
from .segments import HELD_WARMUP, MAX_WARMUP, Segment, dissolve, plan_segments, split_frames, warmup_frames
from .workers import parse_gpus, visible_gpus

__all__ = [
    "HELD_WARMUP",
    "MAX_WARMUP",
    "BatchEvent",
    "BatchProgress",
    "BatchSummary",
    "Job",
    "JobResult",
    "Manifest",
    "ManifestError",
    "Segment",
    "dissolve",
    "format_event",
    "format_summary",
    "load_manifest",
    "parse_gpus",
    "plan_segments",
    "run_batch",
    "split_frames",
    "visible_gpus",
    "warmup_frames",
]
