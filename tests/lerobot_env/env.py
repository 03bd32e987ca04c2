"""The Python with the real ``lerobot`` installed, kept apart from the project's own.

lerobot 0.6.1 needs Python >= 3.12 and ``torch<2.12`` (the CUDA build: no CPU-only
wheel for cp312 on the registry; it runs on the CPU), so it cannot share the main
environment. This module finds or builds it:

1. ``$ODYSSEY_LEROBOT_PYTHON``, when set: a Python with lerobot installed (used as is).
2. Else a virtual environment built from ``requirements.lock`` beside this file into
   ``$ODYSSEY_DATA_CACHE`` (default ``~/.cache/odyssey-data``) as
   ``lerobot-<hash of the lock and the base Python>/``: outside the repository, so it
   survives a fresh clone on the same machine. The build runs under a file lock (one
   builder at a time, the others wait and reuse it) in a temporary folder that is
   renamed into place only once every package installed and ``lerobot`` imports: a
   killed build is never taken for a good one. The base Python is
   ``$ODYSSEY_PYTHON312``, else ``python3.12``/``python3.13`` on ``PATH``, else one
   under ``~/.pyenv/versions``.

Command line (prints the interpreter's path, building it when missing; about 70 s
from pip's cache, a 2.7 GB download without it)::

    python tests/lerobot_env/env.py
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

LOCK_FILE = Path(__file__).with_name("requirements.lock")
ENV_VAR = "ODYSSEY_LEROBOT_PYTHON"
MIN_VERSION = (3, 12)


class Unavailable(RuntimeError):
    """No Python >= 3.12 on this machine: the lerobot environment cannot exist here."""


def _version(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[0], sys.version_info[1])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return int(out[0]), int(out[1])


def base_python() -> str:
    """A Python >= 3.12 to build the environment with.

    Raises:
        Unavailable: none found.
    """
    candidates = [os.environ.get("ODYSSEY_PYTHON312", "")]
    candidates += [shutil.which(name) or "" for name in ("python3.12", "python3.13")]
    pyenv = os.path.expanduser("~/.pyenv/versions")
    candidates += sorted(glob.glob(f"{pyenv}/3.1[2-9]*/bin/python3"))
    for python in filter(None, candidates):
        version = _version(python)
        if version is not None and version >= MIN_VERSION:
            return python
    raise Unavailable(
        "lerobot 0.6.1 needs Python >= 3.12 and none was found (set ODYSSEY_PYTHON312 to "
        f"one, or {ENV_VAR} to a Python that has lerobot installed)"
    )


def cache_dir() -> Path:
    """Where built environments live (outside the repository)."""
    root = os.environ.get("ODYSSEY_DATA_CACHE") or os.path.expanduser("~/.cache/odyssey-data")
    return Path(root)


def _env_name(python: str) -> str:
    digest = hashlib.sha256(LOCK_FILE.read_bytes())
    digest.update(os.path.realpath(python).encode())
    return f"lerobot-{digest.hexdigest()[:16]}"


def _build(python: str, final: Path) -> None:
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        subprocess.run([python, "-m", "venv", str(tmp)], check=True)
        env_python = str(tmp / "bin" / "python")
        subprocess.run(
            [
                env_python,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "-r",
                str(LOCK_FILE),
            ],
            check=True,
        )
        subprocess.run(
            [env_python, "-c", "import lerobot.datasets.lerobot_dataset"],
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        (tmp / ".complete").write_text("built from " + LOCK_FILE.name + "\n")
        shutil.rmtree(final, ignore_errors=True)  # a folder without .complete: a dead build
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def lerobot_python() -> str:
    """The path of a Python with lerobot installed, building its environment if needed.

    Raises:
        Unavailable: no Python >= 3.12 here (and no ``$ODYSSEY_LEROBOT_PYTHON``).
        subprocess.CalledProcessError: the build failed (pip's output says why).
    """
    given = os.environ.get(ENV_VAR)
    if given:
        if not os.access(given, os.X_OK):
            raise Unavailable(f"{ENV_VAR}={given} is not an executable Python")
        return given
    python = base_python()
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / _env_name(python)
    ready = final / ".complete"
    if ready.exists():
        return str(final / "bin" / "python")
    with open(root / f"{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another builder finishes first, then we reuse it
        try:
            if not ready.exists():
                print(f"building the lerobot environment in {final} ...", file=sys.stderr)
                _build(python, final)
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(lock, fcntl.LOCK_UN)
    return str(final / "bin" / "python")


# The FFmpeg libraries torchcodec's core links against (one libtorchcodec_coreN per FFmpeg
# major version N, each needing these sonames; it tries N = 8, 7, ... in turn).
FFMPEG_LIBS = ("avutil", "avcodec", "avformat", "avdevice", "avfilter", "swscale", "swresample")


def torchcodec_env(python: str) -> dict[str, str]:
    """Variables under which torchcodec in ``python`` loads FFmpeg from PyAV's wheel.

    torchcodec (LeRobot's default video backend) ships no FFmpeg: it loads the system's
    ``libavutil.so.N`` and siblings, which a machine without Debian's (or conda's) FFmpeg
    lacks. The environment's PyAV (pinned in ``requirements.lock``) bundles a full FFmpeg
    under ``site-packages/av.libs`` with hashed file names; this links each library
    under its plain soname into ``<cache>/ffmpeg-<hash>/`` (once, atomically) and
    returns an ``LD_LIBRARY_PATH`` that puts those links (and ``av.libs``, for their own
    hashed dependencies) first, so torchcodec loads the same FFmpeg on every machine,
    whatever the system has. The variable must be set before the process starts.

    Raises:
        RuntimeError: the environment's PyAV has no bundled FFmpeg library of that name.
    """
    libs = Path(
        subprocess.run(
            [
                python,
                "-c",
                "import av, os; print(os.path.join(os.path.dirname(os.path.dirname("
                "av.__file__)), 'av.libs'))",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.strip()
    ).resolve()
    links = cache_dir() / f"ffmpeg-{hashlib.sha256(str(libs).encode()).hexdigest()[:16]}"
    if not links.is_dir():
        names = {}
        for lib in FFMPEG_LIBS:
            found = sorted(libs.glob(f"lib{lib}-*.so.*"))
            if len(found) != 1:
                raise RuntimeError(
                    f"torchcodec needs lib{lib}; the lerobot environment's PyAV ({libs}) "
                    f"has {len(found)} files named lib{lib}-*.so.* (expected one)"
                )
            major = found[0].name.split(".so.")[1].split(".")[0]
            names[f"lib{lib}.so.{major}"] = found[0]
        links.parent.mkdir(parents=True, exist_ok=True)
        tmp = links.with_name(f".tmp-{links.name}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, target in names.items():
            (tmp / name).symlink_to(target)
        try:
            os.rename(tmp, links)
        except OSError:  # another process made them first
            shutil.rmtree(tmp, ignore_errors=True)
    path = [str(links), str(libs), os.environ.get("LD_LIBRARY_PATH", "")]
    return {"LD_LIBRARY_PATH": os.pathsep.join(filter(None, path))}


if __name__ == "__main__":
    try:
        print(lerobot_python())
    except Unavailable as exc:
        print(f"unavailable: {exc}", file=sys.stderr)
        sys.exit(2)
