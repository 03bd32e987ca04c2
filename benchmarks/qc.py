"""Issue 17: what quality control costs, beside the same export without it.

The demo server (127.0.0.1, in this process) serves N one-minute 1280x704 recordings at
~4 Mb/s (textured frames, cached on disk after the first run), each with one to three
interactions. In one process, alternating so load drifts hit both alike:

1. anchor: ``export(..., qc="off")`` (reference mode, no QC); measured: the default
   ``qc="reference"`` (the columns measured from frame and prompt times, no pixel).
   Target: under 10 % more wall time (ratio < 1.10). The same comparison is printed
   for ``qc="response"`` (each interaction's visual response latency from a short
   low-resolution decode after it) and ``qc="decode"`` (also every frame decoded at
   64 px wide for frozen stretches).
2. QC cost per minute of video: the QC step alone (``measure``) on each downloaded
   video, one thread, in CPU seconds per minute of video, beside a bare PyAV decode of
   the same video (one thread, no picture conversion) as the anchor.

Run: ``python benchmarks/qc.py [--videos 4] [--seconds 60] [--repeats 9]
[--decode-repeats 2]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

from odyssey_data.align import prompt_timeline
from odyssey_data.events import parse_events
from odyssey_data.measure import QCOptions, measure
from odyssey_data.pipeline import export
from odyssey_data.video import probe_frames


def _export_wall(server: common.DemoServer, output: str, qc: str) -> float:
    started = time.perf_counter()
    report = export(
        output=output,
        api_url=server.base_url,
        api_key=server.api_key,
        workers=2,
        overwrite=True,
        qc=qc,
    )
    wall = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"export with qc={qc} failed: {report.problems}")
    return wall


def _bare_decode(path: Path) -> float:
    import av

    started = time.process_time()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        for _ in container.decode(stream):
            pass
    return time.process_time() - started


def _qc_cpu(path: Path, rec: Any, mode: str) -> tuple[float, int]:
    timing = probe_frames(str(path))
    ts = timing.timestamps_s()
    lines = (rec.events_bytes() or b"").splitlines()
    table = parse_events(lines, stream_id="bench", started_at=rec.started_at).table
    started = time.process_time()
    result = measure(
        QCOptions(mode),
        stream_id="bench",
        video_file=str(path),
        timing=timing,
        timestamps_s=ts,
        timeline=prompt_timeline(table),
        events=table,
        video_duration_s=float(ts[-1]),
        api_duration_s=None,
        prompt_lags_s=None,
        what="bench",
    )
    return time.process_time() - started, result.decoded_frames


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=9, help="off/reference pairs")
    parser.add_argument("--decode-repeats", type=int, default=2, help="response/decode runs")
    args = parser.parse_args(argv)
    catalog = common.full_size_catalog(args.videos, seconds=args.seconds)
    frames = sum(rec.frame_count or 0 for rec in catalog.recordings)
    interactions = sum(len(rec.prompts) - 1 for rec in catalog.recordings)
    mb = sum(len(rec.video_bytes() or b"") for rec in catalog.recordings) / 1e6
    print(
        f"{args.videos} recordings x {args.seconds:.0f} s at 1280x704: {frames:,} frames, "
        f"{interactions} interactions, {mb:.0f} MB"
    )
    with (
        tempfile.TemporaryDirectory(prefix="odyssey-bench-") as tmp,
        common.serve(catalog, page_cap=100) as server,
    ):
        _export_wall(server, f"{tmp}/warm", "off")  # imports, pools, page cache
        # Paired runs, off then reference: the machine's load drifts (other work shares
        # its cores), so each pair's ratio is compared, and the medians.
        pairs = [
            (
                _export_wall(server, f"{tmp}/off", "off"),
                _export_wall(server, f"{tmp}/ref", "reference"),
            )
            for _ in range(args.repeats)
        ]
        off = statistics.median(p[0] for p in pairs)
        reference = statistics.median(p[1] for p in pairs)
        paired = statistics.median(p[1] / p[0] for p in pairs)
        print(f"target: reference-mode QC adds < 10 % to a reference export ({args.repeats} pairs)")
        common.row("anchor: export, reference mode, qc=off (median)", off, "s", 1.0)
        common.row("export, qc=reference (default; median)", reference, "s", reference / off)
        common.row("  median of the pairs' ratios", paired, "", paired, "< 1.10 (target)")
        decoding = {"response": [], "decode": []}
        for _ in range(args.decode_repeats):
            for mode, walls in decoding.items():
                walls.append(_export_wall(server, f"{tmp}/{mode}", mode))
        for mode, label in (("response", "latency windows"), ("decode", "frozen stretches too")):
            wall = statistics.median(decoding[mode])
            common.row(f"export, qc={mode} ({label}; median)", wall, "s", wall / off)

        paths = common.video_files(catalog, Path(tmp) / "videos")
        minutes = sum(rec.seconds for rec in catalog.recordings) / 60.0
        bare = ref_cpu = dec_cpu = timing_cpu = 0.0
        ref_frames = dec_frames = 0
        for rec, path in zip(catalog.recordings, paths, strict=True):
            bare += _bare_decode(path)
            timing_cpu += _qc_cpu(path, rec, "reference")[0]
            cpu, decoded = _qc_cpu(path, rec, "response")
            ref_cpu, ref_frames = ref_cpu + cpu, ref_frames + decoded
            cpu, decoded = _qc_cpu(path, rec, "decode")
            dec_cpu, dec_frames = dec_cpu + cpu, dec_frames + decoded
        per_recording = timing_cpu / len(paths)
        print(
            f"  (the reference QC step alone: {per_recording * 1000:.2f} ms of CPU per recording, "
            f"{per_recording / (off / len(paths)):.2%} of the export's wall per recording)"
        )
        print("QC cost per minute of 1280x704 video (CPU seconds, one thread)")
        common.row("anchor: bare PyAV decode, no conversion", bare / minutes, "s/min", 1.0)
        common.row(
            f"qc=response: {ref_frames / max(1, interactions):.0f} frames decoded per interaction",
            ref_cpu / minutes,
            "s/min",
            ref_cpu / bare,
        )
        common.row(
            "qc=decode: every frame at 64 px wide", dec_cpu / minutes, "s/min", dec_cpu / bare
        )
        print(
            f"  (qc=response: {ref_cpu * 1000 / max(1, interactions):.0f} ms of CPU per "
            f"interaction, {ref_cpu / minutes:.3f} s per minute; qc=decode decoded "
            f"{dec_frames:,} frames of {frames / minutes / 60:.0f} frames/s video)"
        )


if __name__ == "__main__":
    main()
