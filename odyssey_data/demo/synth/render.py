"""The pictures of a demo recording: frames rendered from its prompts, and its MP4.

The background colour is derived from the prompt in force (:func:`prompt_colour`), so
the picture visibly changes at each interaction; a bright box moves with time so
consecutive frames differ; a progress bar grows along the bottom edge. Optional grain
(``content="noise"``) makes every frame cost bits like real footage, and an optional
frame mark (:func:`paint_frame_mark`) paints each frame's index into it. Frames come
from a generator, so long or full-size recordings are encoded without holding their
raw frames in memory; encoding goes through :mod:`odyssey_data.video`.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from odyssey_data.video import encode_video

if TYPE_CHECKING:
    from odyssey_data.demo.synth.recording import DemoRecording

#: The pts time base of every demo video (the usual 90 kHz of MPEG streams).
TIME_BASE = Fraction(1, 90000)


def prompt_colour(prompt: str) -> tuple[int, int, int]:
    """Return the background colour (RGB, each 40..215) that a prompt is drawn with.

    Derived from a hash, so it is stable across runs and differs between prompts; kept
    away from black and white so the moving box stays visible.
    """
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    r, g, b = (40 + digest[i] * 175 // 255 for i in range(3))
    return r, g, b


class _Grain:
    """Seeded noise over a frame, different every frame, cheap to make.

    One noise tile a little larger than the frame is drawn once; each frame adds a window
    of it at a random offset (values 0..39 on colours of 40..215: no overflow). Windows
    jump by more than x264's motion search range, so every frame costs bits like real
    footage, yet making one costs a slice and an add, not a new random draw.
    """

    _PAD = 96

    def __init__(self, width: int, height: int, seed: int) -> None:
        self._rng = np.random.default_rng([seed, 2])
        pad = self._PAD
        self._tile = self._rng.integers(0, 40, size=(height + pad, width + pad, 3), dtype=np.uint8)
        self._width, self._height = width, height

    def add_to(self, frame: npt.NDArray[np.uint8]) -> None:
        dy, dx = (int(v) for v in self._rng.integers(0, self._PAD, size=2))
        frame += self._tile[dy : dy + self._height, dx : dx + self._width]


#: Bits of a frame mark: frame indices 0 .. 2**MARK_BITS - 1.
MARK_BITS = 12


def paint_frame_mark(frame: npt.NDArray[np.uint8], index: int) -> None:
    """Paint ``index`` into the top band of ``frame`` as :data:`MARK_BITS` black/white cells.

    The band is an eighth of the height, each cell a twelfth of the width, most
    significant bit first: coarse enough to survive H.264 and downscaling to a quarter.
    """
    if not 0 <= index < 1 << MARK_BITS:
        raise ValueError(f"frame index {index} does not fit in {MARK_BITS} bits")
    height, width = frame.shape[:2]
    band = max(2, height // 8)
    for bit in range(MARK_BITS):
        left, right = bit * width // MARK_BITS, (bit + 1) * width // MARK_BITS
        on = (index >> (MARK_BITS - 1 - bit)) & 1
        frame[:band, left:right] = 235 if on else 16


def read_frame_mark(frame: npt.NDArray[np.uint8]) -> int:
    """The index :func:`paint_frame_mark` painted into ``frame`` (any size it was scaled to)."""
    height, width = frame.shape[:2]
    band = max(2, height // 8)
    value = 0
    for bit in range(MARK_BITS):
        left, right = bit * width // MARK_BITS, (bit + 1) * width // MARK_BITS
        inset = max(0, (right - left) // 4)
        cell = frame[band // 4 : max(band // 4 + 1, band * 3 // 4), left + inset : right - inset]
        value = value << 1 | int(float(cell.mean()) > 125.0)
    return value


def prompt_at(prompts: tuple[tuple[int, str], ...], ms: float) -> str:
    """The prompt in force at ``ms``: the last one issued at or before it."""
    current = prompts[0][1]
    for time_ms, prompt in prompts:
        if time_ms <= ms:
            current = prompt
        else:
            break
    return current


def render_frames(rec: DemoRecording) -> Iterator[tuple[npt.NDArray[np.uint8], int]]:
    """Yield ``(rgb_frame, pts)`` of ``rec`` one at a time, defects applied."""
    rng = random.Random(rec.seed)
    box_w = max(2, rec.width // 6)
    box_h = max(2, rec.height // 5)
    speed_x = rec.width * rng.uniform(0.35, 0.6)  # pixels per second
    speed_y = rec.height * rng.uniform(0.15, 0.3)
    phase_x = rng.uniform(0, rec.width)
    phase_y = rng.uniform(0, rec.height)
    colours: dict[str, tuple[int, int, int]] = {}
    grain = _Grain(rec.width, rec.height, rec.seed) if rec.content == "noise" else None
    defects = rec.defects
    delay_ms = 0 if defects is None else defects.response_delay_ms
    frozen_from, frozen_count = (None if defects is None else defects.frozen) or (-1, 0)
    held: npt.NDArray[np.uint8] | None = None
    for index, pts in enumerate(rec.frame_pts()):
        if held is not None and frozen_from < index <= frozen_from + frozen_count:
            yield held.copy(), int(pts)
            continue
        t = float(pts - rec.start_pts) / 90000.0
        # A late response: the picture shows each interaction delay_ms after its time
        # (the start prompt, at 0, is on screen from the first frame either way).
        prompt = prompt_at(rec.prompts, t * 1000.0 - delay_ms)
        colour = colours.setdefault(prompt, prompt_colour(prompt))
        frame = np.empty((rec.height, rec.width, 3), dtype=np.uint8)
        frame[:] = colour
        if grain is not None:
            grain.add_to(frame)
        # The box bounces across the frame (a triangle wave in x and y).
        span_x = max(1, rec.width - box_w)
        span_y = max(1, rec.height - box_h)
        x = int(abs(((phase_x + speed_x * t) % (2 * span_x)) - span_x))
        y = int(abs(((phase_y + speed_y * t) % (2 * span_y)) - span_y))
        frame[y : y + box_h, x : x + box_w] = (250, 250, 240)
        # A thin progress bar along the bottom edge grows with time.
        bar = int(rec.width * min(1.0, t / rec.seconds))
        frame[rec.height - 3 :, :bar] = (20, 20, 20)
        if rec.frame_marks:
            paint_frame_mark(frame, index)
        if index == frozen_from:
            held = frame.copy()
        yield frame, int(pts)


def encode_mp4(rec: DemoRecording) -> bytes:
    """``rec``'s video: H.264 with B-frames, its variable frame timing, fast start."""
    # x264 into a temporary file: the MP4 "faststart" pass (index moved to the front,
    # as in streamed recordings) re-reads the output, which a BytesIO cannot offer.
    with tempfile.TemporaryDirectory(prefix="odyssey-demo-") as tmp:
        path = Path(tmp) / "video.mp4"
        encode_video(
            path,
            render_frames(rec),
            width=rec.width,
            height=rec.height,
            time_base=TIME_BASE,
            fps=max(1, round(rec.fps)),
            gop=max(1, round(rec.fps)),
            bframes=2,
            faststart=True,
            bitrate=rec.bitrate,
        )
        return path.read_bytes()
