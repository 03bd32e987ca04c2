"""Pictures of a dataset: a contact sheet of one recording with its prompt timeline.

Frames sampled evenly along time, each labelled with its time and the prompt in force,
above a strip that draws the prompt segments to scale. Needs Pillow (the ``[images]``
extra); returns a ``PIL.Image`` for notebooks and writes PNGs for the CLI.
"""

from __future__ import annotations

import hashlib
import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from odyssey_data.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from odyssey_data.dataset import Dataset

__all__ = ["contact_sheet"]

_BACKGROUND = (250, 250, 248)
_INK = (20, 20, 24)
_MUTED = (95, 95, 105)


def _pil() -> Any:
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as exc:
        raise MissingDependencyError("pillow", "images", "drawing previews") from exc
    return Image, ImageDraw, ImageFont


def _colour(prompt: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(prompt.encode()).digest()
    return (80 + digest[0] % 150, 80 + digest[1] % 150, 80 + digest[2] % 150)


def _fit(draw: Any, text: str, font: Any, width: int, lines: int) -> list[str]:
    """Wrap ``text`` to at most ``lines`` lines of ``width`` pixels, with an ellipsis."""
    chars = max(8, int(width / max(1.0, draw.textlength("abcdefghij", font=font) / 10)))
    wrapped = textwrap.wrap(text, width=chars) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: max(0, chars - 1)].rstrip() + "…"
    return wrapped


def contact_sheet(
    dataset: Dataset,
    stream_id: str | None = None,
    *,
    columns: int = 4,
    rows: int = 3,
    thumb_width: int = 320,
) -> Any:
    """Draw a contact sheet of one recording.

    Args:
        dataset: the dataset.
        stream_id: the recording (default: the first one in the dataset).
        columns: thumbnails per row.
        rows: rows of thumbnails.
        thumb_width: thumbnail width in pixels (height keeps the aspect ratio).

    Returns:
        A ``PIL.Image.Image`` (RGB).

    Raises:
        ConfigError: the dataset has no such recording, or a size out of bounds
            (1..64 columns and rows, thumbnails 16..4096 pixels wide).
    """
    for name, value, low, high in (
        ("columns", columns, 1, 64),
        ("rows", rows, 1, 64),
        ("thumb_width", thumb_width, 16, 4096),
    ):
        if not low <= value <= high:
            raise ConfigError(f"{name} must be within {low}..{high}, not {value}")
    image_mod, draw_mod, font_mod = _pil()
    recordings = dataset.recordings.select("stream_id", "width", "height", "video_duration_s")
    if stream_id is None:
        first = recordings.sort("stream_id").head(1).collect()
        if first.height == 0:
            raise ConfigError(f"the dataset at {dataset.url} has no exported recording")
        stream_id = str(first["stream_id"][0])
    frames = (
        dataset.frames.filter(pl.col("stream_id") == stream_id)
        .select("frame_index", "timestamp_s", "prompt", "width", "height")
        .collect()
    )
    if frames.height == 0:
        raise ConfigError(f"recording {stream_id!r} is not in the dataset at {dataset.url}")
    segments = (
        dataset.segments.filter(pl.col("stream_id") == stream_id)
        .select("prompt_index", "prompt", "start_s", "end_s")
        .sort("prompt_index")
        .collect()
    )
    count = min(columns * rows, frames.height)
    positions = np.unique(np.linspace(0, frames.height - 1, count).round().astype(int))
    picked = frames[positions.tolist()]
    width, height = int(picked["width"][0]), int(picked["height"][0])
    # Fit the frame in a 4:3 box, so portrait recordings do not make a tower of a sheet.
    scale = min(thumb_width / width, thumb_width * 0.75 / height)
    size = (max(2, round(width * scale) // 2 * 2), max(2, round(height * scale) // 2 * 2))
    thumb_height = round(thumb_width * 0.75)
    images = dataset.load_frames([(stream_id, int(i)) for i in picked["frame_index"]], size=size)

    font = font_mod.load_default(size=15)
    small = font_mod.load_default(size=13)
    title_font = font_mod.load_default(size=20)
    pad, label_h = 12, 62
    cell_w, cell_h = thumb_width, thumb_height + label_h
    grid_rows = -(-len(images) // columns)
    strip_h = 70
    sheet_w = pad + columns * (cell_w + pad)
    sheet_h = 48 + grid_rows * (cell_h + pad) + strip_h + 2 * pad
    sheet = image_mod.new("RGB", (sheet_w, sheet_h), _BACKGROUND)
    draw = draw_mod.Draw(sheet)
    duration = float(frames["timestamp_s"][-1])
    draw.text(
        (pad, 14),
        f"{stream_id}   {frames.height} frames · {duration:.2f} s · {segments.height} prompts",
        fill=_INK,
        font=title_font,
    )
    for k, (image, row) in enumerate(zip(images, picked.iter_rows(named=True), strict=True)):
        x = pad + (k % columns) * (cell_w + pad)
        y = 48 + (k // columns) * (cell_h + pad)
        sheet.paste(image_mod.fromarray(image), (x + (cell_w - size[0]) // 2, y))
        draw.text(
            (x, y + thumb_height + 4),
            f"t={row['timestamp_s']:.2f}s  #{row['frame_index']}",
            fill=_MUTED,
            font=small,
        )
        prompt = row["prompt"] if row["prompt"] is not None else "(no prompt yet)"
        for j, line in enumerate(_fit(draw, prompt, font, cell_w, 2)):
            draw.text((x, y + thumb_height + 22 + j * 18), line, fill=_INK, font=font)

    # The timeline strip: one bar per prompt segment, to scale, labelled where it fits.
    top = sheet_h - strip_h - pad
    left, right = pad, sheet_w - pad
    ends = segments["end_s"].to_numpy()
    span = max(duration, float(ends.max()) if ends.size else 0.0)
    scale = (right - left) / span if span > 0 else 0.0
    draw.rectangle((left, top, right, top + 34), outline=_MUTED)
    for seg in segments.iter_rows(named=True):
        x0 = left + seg["start_s"] * scale
        x1 = max(x0 + 2, left + min(seg["end_s"], span) * scale)
        draw.rectangle((x0, top, x1, top + 34), fill=_colour(seg["prompt"]), outline=_BACKGROUND)
        label = _fit(draw, f"{seg['prompt_index']}: {seg['prompt']}", small, int(x1 - x0) - 6, 1)
        if x1 - x0 > 40:
            draw.text((x0 + 4, top + 10), label[0], fill=_INK, font=small)
    for tick in np.linspace(0, span, 6) if span > 0 else []:
        x = left + tick * scale
        draw.line((x, top + 34, x, top + 40), fill=_MUTED)
        anchor = "la" if tick == 0 else ("ra" if tick == span else "ma")
        draw.text((x, top + 42), f"{tick:.1f}s", fill=_MUTED, font=small, anchor=anchor)
    return sheet
