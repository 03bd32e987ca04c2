"""Pipeline files: batch exports as TOML, run by ``odyssey-data run PIPELINE.toml``.

Parsing and validation only (pure, no network, no files written): :func:`load_job` reads a
file, applies ``--set section.key=value`` overrides and returns a :class:`Job`, whose
:meth:`Job.export_config` resolves the environment variables the file names into an
:class:`~odyssey_data.options.ExportConfig`. Every mistake is a
:class:`~odyssey_data.errors.ConfigError` that names the file and the key::

    pipelines/x.toml: [frames] fps must be a number, not 'ten'
    pipelines/x.toml: unknown key [target] urll (did you mean url?)

Secrets are never written in a pipeline file: ``api_key_env`` and
``storage_options_env`` name environment variables, and a literal API key or storage
credential is refused. ``pipelines/README.md`` documents every key.

The export options' keys are not listed here: each option's ``[section] key`` is part of
its declaration in :mod:`odyssey_data.options`, which also reads and checks the values
(as it does the command line's); this module adds the file's own keys (the environment
variable names, the demo server) and the rules about secrets.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from odyssey_data.errors import ConfigError
from odyssey_data.options import OPTIONS, ExportConfig, Surface, read_options

__all__ = ["DemoSource", "Job", "apply_override", "load_job", "parse_job"]

#: Keys of pipeline files that are not export options (read by :func:`parse_job` itself).
_OWN_KEYS: dict[str, tuple[str, ...]] = {
    "": ("description", "source", "target", "frames", "executor", "qc"),
    "source": ("api_key_env", "demo"),
    "source.demo": ("recordings", "seed", "active"),
    "target": ("storage_options_env",),
}


def _schema() -> dict[str, tuple[str, ...]]:
    schema = {section: list(keys) for section, keys in _OWN_KEYS.items()}
    for spec in OPTIONS:
        if spec.toml is not None:
            section, _, key = spec.toml.partition(".")
            schema.setdefault(section, []).append(key)
    return {section: tuple(keys) for section, keys in schema.items()}


#: Every section and its keys (``source.demo`` is a table inside ``[source]``): the
#: export options' ``toml`` keys (:data:`~odyssey_data.options.OPTIONS`) and the file's own.
SCHEMA: dict[str, tuple[str, ...]] = _schema()

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
    for section in ("frames", "executor", "qc"):
        _Reader(where, section, data.get(section, {}))  # refuses unknown keys

    # -- what the file says of itself: the key by name, the demo server
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
    if demo is not None and ("api_url" in source.data or api_key_env is not None):
        raise source.fail(
            "demo", "runs its own server: remove api_url and api_key_env, or remove demo"
        )
    if not target.data.get("url"):
        raise ConfigError(
            f"{where}: [target] url is missing: the dataset root, a folder or fsspec URL"
        )
    storage_options = target.data.get("storage_options", {})
    for option in storage_options if isinstance(storage_options, dict) else ():
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

    # -- the export options, read and checked as every surface's are
    given: dict[str, Any] = {}
    for spec in OPTIONS:
        if spec.toml is not None:
            section, _, key = spec.toml.partition(".")
            table = data.get(section, {})
            if key in table:
                given[spec.name] = table[key]
    try:
        config = ExportConfig(**read_options(given, Surface("toml", where)))
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
