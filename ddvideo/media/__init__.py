"""All file and ffmpeg I/O of ddvideo: still images, video probing, streaming readers and writers, segment joins."""

from .audio import file_fingerprint, read_audio
from .ffmpeg import FINISH_TIMEOUT_S, PROBE_TIMEOUT_S, READ_TIMEOUT_S, ffmpeg_exe
from .images import IMAGE_EXTENSIONS, check_image_output, read_image, write_image
from .join import join_segments
from .lock import WorkLock, check_unlocked
from .paths import FRAME_NAME, PathLike, atomic_path, check_folder, check_not_source, check_writable
from .probe import VideoInfo, probe_video
from .reader import VideoReader
from .writer import VIDEO_EXTENSIONS, VideoWriter

__all__ = [
    "FINISH_TIMEOUT_S",
    "FRAME_NAME",
    "IMAGE_EXTENSIONS",
    "PROBE_TIMEOUT_S",
    "READ_TIMEOUT_S",
    "VIDEO_EXTENSIONS",
    "PathLike",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "WorkLock",
    "atomic_path",
    "check_folder",
    "check_image_output",
    "check_not_source",
    "check_unlocked",
    "check_writable",
    "ffmpeg_exe",
    "file_fingerprint",
    "join_segments",
    "probe_video",
    "read_audio",
    "read_image",
    "write_image",
]
