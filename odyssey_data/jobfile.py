"""Pipeline files: batch exports as TOML, run by ``odyssey-data run PIPELINE.toml``.

Parsing and validation only (pure, no network, no files written): :func:`load_job` reads a
file, applies ``--set section.key=value`` overrides and returns a :class:`Job`, whose
:meth:`Job.export_config` resolves the environment variables the file names into an
:class:`~odyssey_data.pipeline.ExportConfig`. Every mistake is a
:class:`~odyssey_data.errors.ConfigError` that names the file and the key::

    pipelines/x.toml: [frames] fps must be a number, not 'ten'
    pipelines/x.toml: unknown key [target] urll (did you mean url?)

Secrets are never written in a pipeline file: ``api_key_env`` and
``storage_options_env`` name environment variables, and a literal API key or storage
credential is refused. ``pipelines/README.md`` documents every key.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from odyssey_data.errors import ConfigError
from odyssey_data.images import FORMATS, parse_resize
from odyssey_data.models import parse_datetime
from odyssey_data.pipeline import ExportConfig
from odyssey_data.qc import QC_MODES, parse_rule

__all__ = ["DemoSource", "Job", "apply_override", "load_job", "parse_job"]

#: Every section and its keys (``source.demo`` is a table inside ``[source]``).
SCHEMA: dict[str, tuple[str, ...]] = {
    "": ("description", "source", "target", "frames", "executor", "qc"),
    "source": (
        "api_url",
        "api_key_env",
        "stream_ids",
        "started_after",
        "started_before",
        "min_duration_s",
        "limit",
        "demo",
    ),
    "source.demo": ("recordings", "seed", "active"),
    "target": (
        "url",
        "storage_options",
        "storage_options_env",
        "overwrite",
        "mix_options",
        "checkpoint_every",
        "checkpoint_seconds",
        "allow_foreign_files",
    ),
    "frames": ("mode", "resize", "fps", "quality"),
    "executor": ("name", "workers", "ray_address"),
    "qc": ("mode", "fail_on"),
}

#: Keys under which fsspec backends take credentials: a pipeline file names an
#: environment variable for them (``storage_options_env``) instead of holding the value.
SECRET_OPTIONS = frozenset(
    {
        "key",
        "secret",
        "token",
        "password",
        "session_token",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "client_secret",
        "account_key",
        "sas_token",
    }
)

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class DemoSource:
    """Run against the embedded demo server, started in-process (``[source.demo]``).

    Attributes:
        recordings: finished demo recordings.
        seed: makes the catalog reproducible.
        active: still-active recordings (listed, skipped by the export).
    """

    recordings: int = 6
    seed: int = 0
    active: int = 1


@dataclass(frozen=True)
class Job:
    """A validated pipeline file.

    Attributes:
        path: the file, as given (named in every error).
        config: the export options without secrets (``api_key`` unset, storage options
            only the literal ones).
        api_key_env: the environment variable holding the API key (``None``: the
            exporter's default, ``ODYSSEY_API_KEY``).
        storage_options_env: storage option name → environment variable holding its value.
        demo: run against the embedded demo server instead of ``api_url``.
        description: the file's ``description``.
    """

    path: str
    config: ExportConfig
    api_key_env: str | None = None
    storage_options_env: Mapping[str, str] = field(default_factory=dict)
    demo: DemoSource | None = None
    description: str | None = None

    def export_config(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        api_url: str | None = None,
        api_key: str | None = None,
    ) -> ExportConfig:
        """The export options with the named environment variables resolved.

        Args:
            environ: where to read variables (default ``os.environ``).
            api_url: use this API instead of the file's (the demo server's URL).
            api_key: use this key instead of ``api_key_env`` (the demo server's key).

        Raises:
            ConfigError: a variable the file names is not set.
        """
        env = os.environ if environ is None else environ
        key = api_key
        if key is None and self.api_key_env is not None:
            key = env.get(self.api_key_env)
            if not key:
                raise ConfigError(
                    f"{self.path}: [source] api_key_env names the environment variable "
                    f"{self.api_key_env}, which is not set"
                )
        options = dict(self.config.storage_options)
        for option, name in self.storage_options_env.items():
            value = env.get(name)
            if value is None:
                raise ConfigError(
                    f"{self.path}: [target] storage_options_env.{option} names the environment "
                    f"variable {name}, which is not set"
                )
            options[option] = value
        return replace(
            self.config,
            api_url=api_url if api_url is not None else self.config.api_url,
            api_key=key,
            storage_options=options,
        )


def _type_name(kind: type) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }[kind]


class _Reader:
    """Typed access to one table of the file; errors name the file and ``[section] key``."""

    def __init__(self, where: str, section: str, data: Mapping[str, Any]) -> None:
        self.where = where
        self.section = section
        self.data = data
        known = SCHEMA[section]
        for key in data:
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                more = f" (did you mean {hint[0]}?)" if hint else f" (known: {', '.join(known)})"
                what = f"section [{key}]" if not section else f"key {self.name(key)}"
                raise ConfigError(f"{where}: unknown {what}{more}")

    def name(self, key: str) -> str:
        return f"[{self.section}] {key}" if self.section else key

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where}: {self.name(key)} {message}")

    def get(self, key: str, kind: type, default: Any = None) -> Any:
        if key not in self.data:
            return default
        value = self.data[key]
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok:
            raise self.fail(key, f"must be {_type_name(kind)}, not {value!r}")
        return value

    def positive_int(self, key: str, minimum: int = 1) -> int | None:
        value: int | None = self.get(key, int)
        if value is not None and value < minimum:
            raise self.fail(key, f"must be at least {minimum}, not {value}")
        return value

    def table(self, key: str) -> dict[str, Any]:
        value: dict[str, Any] = self.get(key, dict, {})
        return value

    def moment(self, key: str) -> datetime | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, date):
            return datetime.combine(value, time(), tzinfo=UTC)
        if isinstance(value, str):
            try:
                return parse_datetime(value)
            except ValueError:
                pass
        raise self.fail(
            key, f"must be an ISO 8601 time such as 2026-01-31T00:00:00Z, not {value!r}"
        )

    def env_name(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not _ENV_NAME.match(value):
            raise self.fail(
                key,
                "must be the NAME of an environment variable (letters, digits, _), "
                f"not {_redacted(value)}",
            )
        return value


def _redacted(value: Any) -> str:
    """A value for an error message: a string that may be a secret is not repeated."""
    if isinstance(value, str) and len(value) > 6:
        return f"{value[:4]!r}… ({len(value)} characters)"
    return repr(value)


def parse_job(
    data: Mapping[str, Any], path: str = "<pipeline>", *, origin: str | None = None
) -> Job:
    """Validate a parsed pipeline file.

    Args:
        data: the TOML document as ``tomllib`` returns it.
        path: the file, named in errors.
        origin: how ``path`` was changed (``--set`` overrides), named in errors.

    Raises:
        ConfigError: a key is unknown, of the wrong type or out of range, a secret is
            written in the file, or the options do not go together.
    """
    where = f"{path} ({origin})" if origin else path
    top = _Reader(where, "", data)
    description = top.get("description", str)
    for section in ("source", "target", "frames", "executor", "qc"):
        if section in data and not isinstance(data[section], dict):
            raise ConfigError(f"{where}: {section} must be a table [{section}]")

    for secret in ("api_key", "key", "token"):
        if secret in data.get("source", {}):
            raise ConfigError(
                f"{where}: [source] {secret}: never write the API key in a pipeline file; "
                "put it in an environment variable and name that variable: "
                'api_key_env = "ODYSSEY_API_KEY"'
            )
    source = _Reader(where, "source", data.get("source", {}))
    target = _Reader(where, "target", data.get("target", {}))
    frames = _Reader(where, "frames", data.get("frames", {}))
    executor = _Reader(where, "executor", data.get("executor", {}))
    qc = _Reader(where, "qc", data.get("qc", {}))

    # -- [source]
    api_key_env = None
    if "api_key_env" in source.data:
        raw = source.data["api_key_env"]
        if isinstance(raw, str) and raw.startswith("ody_"):
            raise source.fail(
                "api_key_env",
                "holds what looks like an API key: write the NAME of the environment "
                'variable that holds it (api_key_env = "ODYSSEY_API_KEY"), never the key',
            )
        api_key_env = source.env_name("api_key_env", raw)
    demo: DemoSource | None = None
    raw_demo = source.data.get("demo")
    if isinstance(raw_demo, dict):
        demo_reader = _Reader(where, "source.demo", raw_demo)
        demo = DemoSource(
            recordings=_or(demo_reader.positive_int("recordings", 0), 6),
            seed=_or(demo_reader.get("seed", int), 0),
            active=_or(demo_reader.positive_int("active", 0), 1),
        )
    elif source.get("demo", bool, False):
        demo = DemoSource()
    api_url = source.get("api_url", str)
    if demo is not None and (api_url is not None or api_key_env is not None):
        raise source.fail(
            "demo", "runs its own server: remove api_url and api_key_env, or remove demo"
        )
    stream_ids = source.get("stream_ids", list, [])
    if not all(isinstance(s, str) and s for s in stream_ids):
        raise source.fail("stream_ids", f"must be a list of non-empty strings, not {stream_ids!r}")
    started_after = source.moment("started_after")
    started_before = source.moment("started_before")
    if started_after and started_before and not started_after < started_before:
        raise source.fail("started_after", "must be earlier than started_before")
    min_duration = source.get("min_duration_s", float)
    if min_duration is not None and min_duration < 0:
        raise source.fail("min_duration_s", f"must not be negative, not {min_duration}")

    # -- [target]
    url = target.get("url", str)
    if not url:
        raise ConfigError(
            f"{where}: [target] url is missing: the dataset root, a folder or fsspec URL"
        )
    storage_options = target.table("storage_options")
    for option in storage_options:
        if option.lower() in SECRET_OPTIONS:
            raise target.fail(
                f"storage_options.{option}",
                "is a credential: never write it in the file; name the environment "
                f'variable that holds it: storage_options_env = {{{option} = "VARIABLE"}}',
            )
    storage_env = {
        option: target.env_name(f"storage_options_env.{option}", name)
        for option, name in target.table("storage_options_env").items()
    }
    both = sorted(set(storage_options) & set(storage_env))
    if both:
        raise target.fail("storage_options_env", f"and storage_options both set {both[0]}")

    # -- [frames]
    mode = frames.get("mode", str, "reference")
    if mode not in FORMATS:
        raise frames.fail("mode", f"must be one of {', '.join(FORMATS)}, not {mode!r}")
    resize = None
    if "resize" in frames.data:
        raw_resize = frames.data["resize"]
        if isinstance(raw_resize, int) and not isinstance(raw_resize, bool):
            raw_resize = str(raw_resize)
        if not isinstance(raw_resize, str):
            raise frames.fail("resize", f'must be "WxH" or "W", not {raw_resize!r}')
        try:
            resize = parse_resize(raw_resize)
        except ConfigError as exc:
            raise frames.fail(
                "resize", f'must be "WxH" or "W" (keep aspect), not {raw_resize!r}'
            ) from exc
    fps = frames.get("fps", float)
    if fps is not None and not fps > 0:
        raise frames.fail("fps", f"must be positive, not {fps}")
    quality = _or(frames.get("quality", int), 90)
    if not 1 <= quality <= 100:
        raise frames.fail("quality", f"must be within 1..100, not {quality}")

    # -- [qc]
    qc_mode = qc.get("mode", str, "reference")
    if qc_mode not in QC_MODES:
        raise qc.fail("mode", f"must be one of {', '.join(QC_MODES)}, not {qc_mode!r}")
    fail_on = qc.get("fail_on", list, [])
    if not all(isinstance(rule, str) and rule for rule in fail_on):
        raise qc.fail("fail_on", f'must be a list of rules such as ["gaps>0"], not {fail_on!r}')
    for rule in fail_on:
        try:
            parse_rule(rule)
        except ConfigError as exc:
            raise qc.fail("fail_on", str(exc)) from exc

    # -- [executor]
    name = executor.get("name", str, "local")
    if name not in ("local", "ray"):
        raise executor.fail("name", f"must be local or ray, not {name!r}")
    ray_address = executor.get("ray_address", str)
    if ray_address is not None and name != "ray":
        raise executor.fail("ray_address", 'needs name = "ray"')

    try:
        config = ExportConfig(
            output=url,
            api_url=api_url,
            limit=source.positive_int("limit"),
            stream_ids=tuple(stream_ids),
            started_after=started_after,
            started_before=started_before,
            min_duration_s=min_duration,
            workers=executor.positive_int("workers"),
            executor=name,
            ray_address=ray_address,
            storage_options=storage_options,
            overwrite=target.get("overwrite", bool, False),
            allow_foreign_files=target.get("allow_foreign_files", bool, False),
            mix_options=target.get("mix_options", bool, False),
            checkpoint_every=_or(target.positive_int("checkpoint_every"), 100),
            checkpoint_seconds=_checkpoint_seconds(target),
            frames=mode,
            resize=resize,
            fps=fps,
            image_quality=quality,
            qc=qc_mode,
            qc_fail_on=tuple(fail_on),
        )
    except ConfigError as exc:
        if str(exc).startswith(where):
            raise
        raise ConfigError(f"{where}: {exc}") from exc
    return Job(
        path=path,
        config=config,
        api_key_env=api_key_env,
        storage_options_env=storage_env,
        demo=demo,
        description=description,
    )


def _checkpoint_seconds(target: Any) -> float:
    seconds = target.get("checkpoint_seconds", float)
    if seconds is None:
        return 30.0
    if not seconds > 0:
        raise target.fail("checkpoint_seconds", f"must be positive, not {seconds}")
    return float(seconds)


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set section.key=value`` to a parsed file, in place.

    The value is read as TOML when it parses (``10``, ``true``, ``"x"``, ``[1, 2]``,
    ``2026-01-01T00:00:00Z``), else taken as a string (``./out``, ``s3://b/p``).

    Raises:
        ConfigError: not of the form ``section.key=value``.
    """
    dotted, sep, text = assignment.partition("=")
    parts = [p.strip() for p in dotted.split(".")]
    if not sep or len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set takes section.key=value, not {assignment!r}")
    try:
        value: Any = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        value = text
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {part} is not a table")
        node = child
    node[parts[-1]] = value


def load_job(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Job:
    """Read and validate a pipeline file.

    Args:
        path: the TOML file.
        overrides: ``section.key=value`` assignments applied after reading (``--set``).

    Raises:
        ConfigError: the file cannot be read, is not TOML, or is not a valid pipeline.
    """
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read the pipeline file ({exc.strerror})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: not valid TOML: {exc}") from exc
    for assignment in overrides:
        apply_override(data, assignment)
    origin = (
        "with --set " + ", ".join(o.partition("=")[0] for o in overrides) if overrides else None
    )
    return parse_job(data, name, origin=origin)
