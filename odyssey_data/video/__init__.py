"""Everything that touches PyAV: frame timing, frame decoding, and writing videos.

This package is the only place that imports ``av``. What PyAV raises becomes the
package's error in one place, :mod:`~odyssey_data.video.errors` (a
:class:`~odyssey_data.errors.DecodeError` naming the recording, or a
:class:`~odyssey_data.errors.StorageFullError` when a disk written to is full). Its
modules, by what they do:

- :mod:`~odyssey_data.video.container`: opening a video, choosing the recording's stream
  (:func:`stream_params`), decoded frames as RGB arrays;
- :mod:`~odyssey_data.video.timing`: every frame's pts and key-frame flag by demuxing,
  with the checks that the file is whole (:func:`probe_frames`, :class:`FrameTiming`);
- :mod:`~odyssey_data.video.index` and :mod:`~odyssey_data.video.reader`: the
  random-access read path (:class:`FrameIndex`, :class:`VideoReader`,
  :func:`read_frames`), pure index arithmetic apart from the decoder;
- :mod:`~odyssey_data.video.decode`: decoding whole videos or windows of them for the
  export (:func:`decode_frames`, :func:`scan_windows`, :func:`iter_decoded`);
- :mod:`~odyssey_data.video.encode`: H.264 and JPEG encoding (:func:`encode_video`,
  :func:`resample_video`, :func:`encode_jpeg`);
- :mod:`~odyssey_data.video.media`: whether a thumbnail or preview is what it claims
  (:func:`media_problem`).

Import the names from ``odyssey_data.video``; the modules are its layout.
"""

from __future__ import annotations

from odyssey_data.video.container import VideoSource, stream_params
from odyssey_data.video.decode import decode_frames, iter_decoded, scan_windows
from odyssey_data.video.encode import encode_jpeg, encode_video, resample_video
from odyssey_data.video.index import LONG_RUN_FRAMES, FrameIndex, min_forward_skip
from odyssey_data.video.media import media_problem
from odyssey_data.video.reader import VideoReader, available_cores, read_frames
from odyssey_data.video.timing import FrameTiming, ProbeMode, probe_frames, ticks_to_seconds

__all__ = [
    "LONG_RUN_FRAMES",
    "FrameIndex",
    "FrameTiming",
    "ProbeMode",
    "VideoReader",
    "VideoSource",
    "available_cores",
    "decode_frames",
    "encode_jpeg",
    "encode_video",
    "iter_decoded",
    "media_problem",
    "min_forward_skip",
    "probe_frames",
    "read_frames",
    "resample_video",
    "scan_windows",
    "stream_params",
    "ticks_to_seconds",
]
