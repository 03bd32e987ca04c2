"""Issue 7, target 5: frames/s flat from 10 to 200 recordings; a re-run costs < 5 %.

Demo recordings (320x176 / 176x320, ``--seconds`` long; videos cached on disk) are
exported in this process with ``export(workers=2)``: first 10 of them (the anchor), then
200 into a fresh dataset, then the 200 again with nothing new. Before them, the same 10 are
exported once as the process's first export, shown apart: it also pays one-time costs
(imports made on first use), which are not a matter of scale. Targets: frames/s of the
200-recording run within +-20 % of the 10-recording run; the re-run under 5 % of the
first 200-recording run's wall time.

Run: ``python benchmarks/scaling.py [--small 10] [--large 200] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

from odyssey_data.pipeline import export


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    catalog = common.cached_catalog(args.large, seed=7, seconds=args.seconds)
    rates = {}
    with (
        tempfile.TemporaryDirectory(prefix="odyssey-bench-") as tmp,
        common.serve(catalog, page_cap=100) as server,
    ):
        common_options = {"api_url": server.base_url, "api_key": server.api_key, "workers": 2}
        # The first export in a process also pays one-time costs (imports made on first
        # use, such as pyarrow's of pandas; the TLS context): measured apart, so the two
        # runs compared below differ only in the number of recordings.
        cold = export(output=f"{tmp}/cold", limit=args.small, **common_options)
        for n in (args.small, args.large):
            report = export(output=f"{tmp}/ds{n}", limit=n, **common_options)
            assert report.exported == n, report
            rates[n] = report.frames_per_s
        first = report.elapsed_s
        started = time.perf_counter()
        again = export(output=f"{tmp}/ds{args.large}", **common_options)
        rerun = time.perf_counter() - started
        if again.exported or again.already != args.large:
            raise SystemExit(f"the re-run was not a no-op: {again}")
    print("target 5: scaling")
    small, large = rates[args.small], rates[args.large]
    common.row(f"anchor: export of {args.small} recordings", small, "frames/s", 1.0)
    common.row(
        f"export of {args.large} recordings", large, "frames/s", large / small, "0.8..1.2 (target)"
    )
    common.row(
        f"  ({args.small} recordings as the first export in a process)",
        cold.frames_per_s,
        "frames/s",
        cold.frames_per_s / small,
        "(one-time costs)",
    )
    common.row(f"anchor: first export of {args.large} recordings", first, "s", 1.0)
    common.row("re-run with nothing new", rerun, "s", rerun / first, "< 0.05 (target)")


if __name__ == "__main__":
    main()
