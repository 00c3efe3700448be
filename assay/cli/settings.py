"""Client-side settings of the operator CLI: flags, environment, config file, defaults.

`resolve_settings` is the one place that decides precedence:

    flag  >  environment  >  config file  >  default

For the API key, a key *file* wins over a key given at the same level:
    --api-key > $ASSAY_API_KEY_FILE > $ASSAY_API_KEY > config api_key_file > config api_key.

Config file discovery (YAML): --config PATH, then $ASSAY_CONFIG_FILE (an explicit path must exist),
else the first existing of $XDG_CONFIG_HOME/assay/config.yaml, ~/.config/assay/config.yaml,
/etc/assay/config.yaml (none found is fine).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.config import ClientSettings, declared, env_text
from assay.errors import ConfigError

DECLARED = declared(ClientSettings)  # name, env var, default, config key: assay/config.py
DEFAULT_ENGINE_URL: str = DECLARED["engine_url"].default
DEFAULT_NAMESPACE: str = DECLARED["namespace"].default
CONFIG_KEYS = tuple(name for name, s in DECLARED.items() if s.config_key)
SYSTEM_CONFIG = Path("/etc/assay/config.yaml")
ENV = {name: s.env for name, s in DECLARED.items() if s.env}


@dataclass
class CliSettings:
    engine_url: str = DEFAULT_ENGINE_URL
    api_key: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    output: str = "json"
    config_path: str | None = None
    sources: dict[str, str] = field(default_factory=dict)  # setting -> flag | env | config | default
    warnings: list[str] = field(default_factory=list)


def _env(environ: Mapping[str, str], name: str) -> str | None:
    """A client setting's variable (by setting name), or another variable (by its own name)."""
    s = DECLARED.get(name)
    if s is not None:
        return env_text(s, environ)
    value = environ.get(name)
    return value if value not in (None, "") else None


def find_config(flag_path: str | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to read, or None. An explicitly named file that does not exist is an error."""
    for explicit, origin in ((flag_path, "--config"), (_env(environ, "config"), ENV["config"])):
        if explicit:
            p = Path(explicit).expanduser()
            if not p.is_file():
                raise ConfigError(f"config file not found: {explicit} (from {origin})")
            return p
    candidates = []
    xdg = _env(environ, "XDG_CONFIG_HOME")
    if xdg:
        candidates.append(Path(xdg) / "assay" / "config.yaml")
    home = _env(environ, "HOME")
    home_path = Path(home) if home else Path.home()
    candidates.append(home_path / ".config" / "assay" / "config.yaml")
    candidates.append(SYSTEM_CONFIG)
    for p in candidates:
        if p.is_file():
            return p
    return None


def load_config(path: Path) -> dict[str, Any]:
    """Parse a YAML config file into a flat mapping (errors name the file and line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path}: {getattr(e, 'strerror', None) or e}") from None
    import yaml  # only when a config file exists: keeps the CLI start-up light

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"malformed YAML in config file {path}:{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def _read_key_file(path: str, origin: str, base: Path | None = None) -> str:
    p = Path(path).expanduser()
    if base is not None and not p.is_absolute():
        p = base / p
    try:
        key = p.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"cannot read API key file {p} (from {origin}): {getattr(e, 'strerror', None) or e}"
        ) from None
    if not key:
        raise ConfigError(f"API key file {p} (from {origin}) is empty")
    return key


def _output(value: Any, origin: str) -> str:
    try:
        return str(DECLARED["output"].parse(str(value)))
    except ValueError as e:
        raise ConfigError(f"unknown output format {value!r} from {origin} ({e})") from None


def resolve_settings(
    flags: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, stdout_is_tty: bool = False
) -> CliSettings:
    """Apply flag > env > config > default for every setting (see the module docstring)."""
    environ = os.environ if environ is None else environ
    s = CliSettings()
    path = find_config(flags.get("config"), environ)
    config: dict[str, Any] = {}
    if path is not None:
        config = load_config(path)
        s.config_path = str(path)
        for key in config:
            if key not in CONFIG_KEYS:
                s.warnings.append(
                    f"config file {path}: unknown key {key!r} ignored (known: {', '.join(CONFIG_KEYS)})"
                )
    origin_cfg = f"config file {path}"

    def pick(name: str, default: Any) -> tuple[Any, str]:
        if flags.get(name) not in (None, ""):
            return flags[name], "flag"
        env_value = _env(environ, name)
        if env_value is not None:
            return env_value, "env"
        if config.get(name) not in (None, ""):
            return config[name], "config"
        return default, "default"

    url, s.sources["engine_url"] = pick("engine_url", DEFAULT_ENGINE_URL)
    s.engine_url = str(url).strip()
    ns, s.sources["namespace"] = pick("namespace", DEFAULT_NAMESPACE)
    s.namespace = str(ns).strip()
    out, src = pick("output", None)
    s.sources["output"] = src
    if out is None:
        s.output = "table" if stdout_is_tty else "json"
    else:
        s.output = _output(out, {"flag": "--output", "env": ENV["output"], "config": origin_cfg}[src])

    if flags.get("api_key"):
        s.api_key, s.sources["api_key"] = str(flags["api_key"]).strip(), "flag"
    elif _env(environ, "api_key_file"):
        s.api_key = _read_key_file(environ[ENV["api_key_file"]], ENV["api_key_file"])
        s.sources["api_key"] = "env"
    elif _env(environ, "api_key"):
        s.api_key, s.sources["api_key"] = environ[ENV["api_key"]].strip(), "env"
    elif config.get("api_key_file"):
        base = path.parent if path is not None else None
        s.api_key = _read_key_file(str(config["api_key_file"]), origin_cfg, base)
        s.sources["api_key"] = "config"
    elif config.get("api_key"):
        s.api_key, s.sources["api_key"] = str(config["api_key"]).strip(), "config"
    else:
        s.sources["api_key"] = "default"
    return s
