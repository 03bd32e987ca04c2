"""The ``[frames]`` options: what an exported recording's frame rows hold (reference
rows or materialised images, their size and rate), how frame timing is read, the event
clock, and the thumbnails beside each video. Declared as :class:`ShapeOptions`, one of
the groups of :mod:`odyssey_data.options` (import them from there); :class:`FrameOptions`
is what each worker does with the frames.

The options whose value changes the rows (``data=``) are recorded with each recording
and compared on re-runs (see :mod:`odyssey_data.runs`). Pure, as the options are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from odyssey_data.optionspec import BOOL, FLOAT, INT, SIZE, TEXT, Invalid, Recorded, bounded, option

if TYPE_CHECKING:
    from odyssey_data.video import ProbeMode

__all__ = ["FORMATS", "PROBE_MODES", "FrameOptions", "ShapeOptions"]

#: Frame formats: reference rows, or an image format materialised in the ``image`` column.
FORMATS: Final = ("reference", "jpeg", "png", "webp")
#: How frame timing is read (see :mod:`odyssey_data.video`).
PROBE_MODES: Final = ("auto", "demux", "decode")

#: Bounds of the frame options (refused up front outside them).
MAX_FPS = 1000.0
MAX_IMAGE_SIDE = 16384
MAX_EVENT_OFFSET_MS = 7 * 86_400_000.0  # a week either way


def _check_size(value: tuple[int, int | None]) -> None:
    for side in value:
        if side is not None and not 2 <= side <= MAX_IMAGE_SIDE:
            raise Invalid(f"sides must be within 2..{MAX_IMAGE_SIDE} pixels, not {value}")


def _resize_text(config: Any) -> str | None:
    """``WxH``, or ``W`` when the aspect ratio is kept (as ``--resize`` takes it)."""
    if config.resize is None:
        return None
    width, height = config.resize
    return f"{width}x{height}" if height is not None else str(width)


def _quality_in_rows(config: Any) -> int | None:
    """The quality of the images in the rows: only lossy formats have one."""
    quality: int | None = config.image_quality if config.frames in ("jpeg", "webp") else None
    return quality


@dataclass(frozen=True)
class FrameOptions:
    """What each worker does with the frames: reference rows only, or materialised images
    (``mode``, ``resize``, ``fps``, ``quality``: see :class:`ShapeOptions`)."""

    mode: str = "reference"
    resize: tuple[int, int | None] | None = None
    fps: float | None = None
    quality: int = 90

    @property
    def materialised(self) -> bool:
        """True when frames are encoded into the ``image`` column."""
        return self.mode != "reference"

    def streams(self) -> bool:
        """True when frames are decoded while the video downloads (see ``_stream``):
        materialised frames, whose images are made as the bytes arrive."""
        return self.materialised

    def validate(self) -> None:
        """Raise :class:`ConfigError` for options that need what is not installed."""
        if self.materialised:
            from odyssey_data.images import image_encoder

            image_encoder(self.mode, self.quality)  # fails early on a missing extra


@dataclass(frozen=True, kw_only=True)
class ShapeOptions:
    """What the rows hold: the options that shape the data."""

    frames: str = option(
        "reference",
        TEXT,
        "reference (rows point into the videos) or an image format to materialise each "
        "frame in the image column (needs odyssey-data[images])",
        cli="--frames",
        toml="frames.mode",
        choices=FORMATS,
        record=True,
        data=True,
    )
    resize: tuple[int, int | None] | None = option(
        None,
        SIZE,
        "size of materialised frames; W alone keeps the aspect ratio (WxH warns when it stretches)",
        cli="--resize",
        toml="frames.resize",
        check=_check_size,
        metavar="WxH",
        record=True,
        data=Recorded(value=_resize_text),
    )
    fps: float | None = option(
        None,
        FLOAT,
        "keep only the frame nearest to each tick of this rate",
        cli="--fps",
        toml="frames.fps",
        check=bounded(0.0, MAX_FPS, low_open=True),
        record=True,
        data=True,
    )
    image_quality: int = option(
        90,
        INT,
        "JPEG/WebP quality 1..100",
        cli="--image-quality",
        toml="frames.quality",
        check=bounded(1, 100, span=True),
        metavar="Q",
        no_record="written where it shapes the rows: each recording's export_options "
        "quality (JPEG, WebP)",
        data=Recorded(key="quality", value=_quality_in_rows),
    )
    probe: ProbeMode = option(
        "auto",
        TEXT,
        "how frame timing is read (auto: demux, checked against a decode)",
        cli="--probe",
        toml="frames.probe",
        choices=PROBE_MODES,
        record=True,
        no_data="how frame timing is read, not what it is: every mode finds the same frames "
        "of a sound video (auto checks the demuxer against a decode where they could differ)",
    )
    event_offset_ms: float = option(
        0.0,
        FLOAT,
        "added to every event time (events clock to video clock)",
        cli="--event-offset-ms",
        toml="frames.event_offset_ms",
        check=bounded(-MAX_EVENT_OFFSET_MS, MAX_EVENT_OFFSET_MS),
        metavar="MS",
        record=True,
        data=Recorded(value=lambda config: float(config.event_offset_ms)),
    )
    with_thumbnails: bool = option(
        False,
        BOOL,
        "also store each recording's thumbnail JPEG and preview MP4 beside its video",
        cli="--with-thumbnails",
        toml="frames.with_thumbnails",
        record=True,
        no_data="adds files beside the video, named in recordings.thumbnail_path and "
        "recordings.preview_path (null without them); the contract's columns are the same",
    )

    def frame_options(self) -> FrameOptions:
        """What each worker does with the frames (reference rows or encoded images)."""
        return FrameOptions(self.frames, self.resize, self.fps, self.image_quality)
