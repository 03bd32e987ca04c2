"""Where a video's frames and key frames are (the frames table's), and what reading costs.

Pure numpy: a :class:`FrameIndex` answers where a decoder must seek and how many frames
a request decodes, which is how a :class:`~odyssey_data.video.reader.VideoReader`
positions itself and how many threads a request gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["LONG_RUN_FRAMES", "SPLIT_SHARE", "FrameIndex", "min_forward_skip"]

#: Frames decoded per seek from which frame threads pay off. Below it one thread is
#: faster: a frame-threaded decoder holds frames back and restarts its threads at every
#: seek (one frame after a seek: 29 ms on frame threads against 21 ms on one thread, at
#: 640x360 on 2 cores). Measured by ``benchmarks/read_path.py``. Also the fewest frames a
#: request decodes for it to be shared out among decoders (:meth:`FrameIndex.split`).
LONG_RUN_FRAMES = 16

#: A long run is cut into parts decoded side by side (:meth:`FrameIndex.split`) only if
#: its longest part decodes at most this share of its frames. Frame threads gain about as
#: much on a run that cannot be cut so evenly: 1.37 times on 2 cores against 1.5 times
#: for two single-threaded decoders on a 16-frame clip at 10 fps of a 30 fps recording.
SPLIT_SHARE = 0.75


class FrameIndex:
    """Where a video's frames and key frames are, as the frames table lists them.

    A :class:`~odyssey_data.video.reader.VideoReader` positions its decoder with this
    instead of asking the container: it seeks only when a key frame lies between its
    position and the next target, and otherwise decodes forward.

    Args:
        key_pts: presentation timestamps of the key frames (the ``is_keyframe`` rows).
        pts: every presented frame's pts, ascending, or ``None`` when only the key frames
            are known (then decode costs cannot be counted, see :meth:`plan`).
    """

    __slots__ = ("key_pts", "pts")

    def __init__(self, key_pts: Iterable[int], pts: npt.ArrayLike | None = None) -> None:
        self.key_pts: npt.NDArray[np.int64] = np.sort(np.asarray(list(key_pts), dtype=np.int64))
        self.pts: npt.NDArray[np.int64] | None = (
            None if pts is None else np.asarray(pts, dtype=np.int64)
        )

    @classmethod
    def of(cls, pts: npt.ArrayLike, is_keyframe: npt.ArrayLike) -> FrameIndex:
        """From a video's ``pts`` and ``is_keyframe`` columns, sorted by pts."""
        all_pts = np.asarray(pts, dtype=np.int64)
        keys = np.asarray(is_keyframe, dtype=np.bool_)
        if all_pts.size > 1 and not bool(np.all(all_pts[1:] > all_pts[:-1])):
            order = np.argsort(all_pts, kind="stable")
            all_pts, keys = all_pts[order], keys[order]
        return cls(all_pts[keys].tolist(), all_pts)

    @property
    def first_pts(self) -> int | None:
        """The first presented frame's pts, if known."""
        if self.pts is not None and self.pts.size:
            return int(self.pts[0])
        return int(self.key_pts[0]) if self.key_pts.size else None

    def key_at_or_before(self, target: int) -> int | None:
        """The last key frame at or before ``target``, or ``None``."""
        at = int(np.searchsorted(self.key_pts, target, side="right")) - 1
        return int(self.key_pts[at]) if at >= 0 else None

    def needs_seek(self, position: int | None, target: int, min_skip: int = 1) -> bool:
        """Whether a decoder that last presented ``position`` must seek to reach ``target``.

        ``position`` is ``None`` for a decoder that has presented nothing since it was
        opened (it stands at the start of the stream). A seek is needed to go back; going
        forward it pays off when a key frame lies between the position and the target
        and decoding can start there, skipping at least ``min_skip`` frames (with every
        frame's pts known); otherwise decoding forward is cheaper.
        """
        key = self.key_at_or_before(target)
        if position is None:
            first = self.first_pts
            if first is None:
                return True  # nothing known: go to the target, as a plain reader would
            if key is None or key <= first:
                return False
        elif target <= position:
            return True
        elif key is None or key <= position:
            return False
        if self.pts is None:
            return True
        after = 0 if position is None else int(np.searchsorted(self.pts, position, "right"))
        return int(np.searchsorted(self.pts, key)) - after >= min_skip

    def plan(
        self, targets: Sequence[int], position: int | None = None, min_skip: int = 1
    ) -> tuple[int, int] | None:
        """``(frames decoded, seeks)`` to present sorted ``targets`` from ``position``.

        ``None`` when the index holds only the key frames (the frames in between are
        not counted).
        """
        if self.pts is None:
            return None
        steps = list(self._steps(targets, position, min_skip))
        return sum(frames for _, frames, _ in steps), sum(seek for _, _, seek in steps)

    def _steps(
        self, targets: Sequence[int], position: int | None, min_skip: int
    ) -> Iterator[tuple[int, int, bool]]:
        """``(target, frames decoded to present it, whether a seek comes first)`` for each
        of the sorted ``targets`` read from ``position`` (every frame's pts known)."""
        assert self.pts is not None
        for target in targets:
            if target == position:
                continue  # the reader still holds that frame
            at = int(np.searchsorted(self.pts, target, side="right"))
            seek = self.needs_seek(position, target, min_skip)
            if seek:
                key = self.key_at_or_before(target)
                start = int(np.searchsorted(self.pts, target if key is None else key))
            elif position is None:
                start = 0
            else:
                start = int(np.searchsorted(self.pts, position, side="right"))
            yield target, max(0, at - start), seek
            position = target

    def threads_for(self, targets: Sequence[int], budget: int) -> int:
        """Decoder threads for a request: 1 for isolated frames, ``budget`` for long runs.

        A request is a long run when it asks for several frames and a frame-threaded
        decoder would decode at least :data:`LONG_RUN_FRAMES` frames per seek (a clip, a
        sequential scan); without every frame's pts, when it asks for several frames. A
        single frame always decodes on one thread, however far from its key frame: the
        same video's next single frame then reuses the same decoder.
        """
        wanted = sorted(set(int(p) for p in targets))
        if budget <= 1 or len(wanted) < 2:
            return 1
        planned = self.plan(wanted, None, min_forward_skip(budget))
        if planned is None:
            return budget
        frames, seeks = planned
        return budget if frames >= LONG_RUN_FRAMES * max(1, seeks) else 1

    def split(self, targets: Sequence[int], parts: int) -> list[list[int]]:
        """``targets`` shared out into at most ``parts`` requests that decode side by side.

        The sorted targets are cut into runs wherever a key frame lies after one target
        and at or before the next: a decoder reaches the run after the cut from that key
        frame exactly as one decoder reading the whole request would, so each run decodes
        the same frames wherever it is read. The runs are shared out (largest first, to
        the part with the fewest frames to decode so far) so the parts decode about as
        many frames each; together they decode no more frames than one decoder would.
        Each part's targets are sorted.

        One part (the sorted targets) when the request is short (under
        :data:`LONG_RUN_FRAMES` frames to decode), when only the key frames are known, or
        when the busiest part would still decode more than :data:`SPLIT_SHARE` of the
        frames.
        """
        wanted = sorted(set(int(p) for p in targets))
        if parts <= 1 or len(wanted) < 2 or self.pts is None:
            return [wanted]
        # Per run: the frames a one-thread decode spends on its targets, and the targets.
        runs: list[tuple[int, list[int]]] = []
        previous: int | None = None
        for target, frames, _ in self._steps(wanted, None, 1):
            key = self.key_at_or_before(target)
            if previous is not None and (key is None or key <= previous):
                spent, members = runs[-1]
                runs[-1] = (spent + frames, [*members, target])
            else:
                runs.append((frames, [target]))
            previous = target
        total = sum(frames for frames, _ in runs)
        if total < LONG_RUN_FRAMES or len(runs) < 2:
            return [wanted]
        loads = [0] * min(parts, len(runs))
        shares: list[list[int]] = [[] for _ in loads]
        for frames, members in sorted(runs, key=lambda run: -run[0]):
            least = loads.index(min(loads))
            loads[least] += frames
            shares[least].extend(members)
        if max(loads) > SPLIT_SHARE * total:
            return [wanted]
        return [sorted(share) for share in shares]


def min_forward_skip(threads: int) -> int:
    """Frames a forward seek must skip to pay off on a decoder with ``threads`` threads.

    One thread: any frame (a seek in an indexed MP4 costs less than decoding one).
    Frame threads: a seek drains and refills the threads, so it must skip more.
    """
    return 1 if threads <= 1 else 2 * threads
