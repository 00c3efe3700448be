"""Global option resolution: flag > env > config > default, config discovery, key files."""

from __future__ import annotations

import pytest

from assay.cli.settings import find_config, load_config, resolve_settings
from assay.errors import ConfigError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def env_for(tmp_path, **extra):
    env = {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    env.update(extra)
    return env


def test_defaults_without_anything(tmp_path):
    s = resolve_settings({}, env_for(tmp_path))
    assert (s.engine_url, s.api_key, s.namespace, s.output, s.config_path) == (
        "http://127.0.0.1:8080",
        None,
        "main",
        "json",
        None,
    )
    assert resolve_settings({}, env_for(tmp_path), stdout_is_tty=True).output == "table"


def test_precedence_flag_env_config_default(tmp_path):
    cfg = write(
        tmp_path / "xdg" / "assay" / "config.yaml",
        "engine_url: http://cfg:1\nnamespace: cfgns\noutput: table\napi_key: cfgkey\n",
    )
    env = env_for(tmp_path)
    s = resolve_settings({}, env)
    assert (s.engine_url, s.namespace, s.output, s.api_key) == ("http://cfg:1", "cfgns", "table", "cfgkey")
    assert s.config_path == str(cfg)
    assert s.sources["engine_url"] == "config"

    env.update(
        ASSAY_ENGINE_URL="http://env:2", ASSAY_NAMESPACE="envns", ASSAY_OUTPUT="JSONL", ASSAY_API_KEY="envkey"
    )
    s = resolve_settings({}, env)
    assert (s.engine_url, s.namespace, s.output, s.api_key) == ("http://env:2", "envns", "jsonl", "envkey")

    s = resolve_settings(
        {"engine_url": "http://flag:3", "namespace": "flagns", "output": "json", "api_key": "flagkey"}, env
    )
    assert (s.engine_url, s.namespace, s.output, s.api_key) == ("http://flag:3", "flagns", "json", "flagkey")
    assert set(s.sources.values()) == {"flag"}


def test_empty_env_values_count_as_unset(tmp_path):
    s = resolve_settings({}, env_for(tmp_path, ASSAY_ENGINE_URL="", ASSAY_NAMESPACE=""))
    assert s.engine_url == "http://127.0.0.1:8080" and s.namespace == "main"


def test_key_file_precedence(tmp_path):
    keyfile = write(tmp_path / "secret", "  filekey\n\n")
    cfgkey = write(tmp_path / "xdg" / "assay" / "cfgsecret", "cfgfilekey\n")
    write(tmp_path / "xdg" / "assay" / "config.yaml", "api_key: plain\napi_key_file: cfgsecret\n")
    env = env_for(tmp_path)
    # config: api_key_file (relative to the config file) wins over api_key
    assert resolve_settings({}, env).api_key == "cfgfilekey"
    assert cfgkey.exists()
    # env key beats config
    env["ASSAY_API_KEY"] = "envkey"
    assert resolve_settings({}, env).api_key == "envkey"
    # env key file beats env key (read + trimmed)
    env["ASSAY_API_KEY_FILE"] = str(keyfile)
    assert resolve_settings({}, env).api_key == "filekey"
    # flag beats everything
    assert resolve_settings({"api_key": "flagkey"}, env).api_key == "flagkey"


def test_unreadable_key_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read API key file .*missing"):
        resolve_settings({}, env_for(tmp_path, ASSAY_API_KEY_FILE=str(tmp_path / "missing")))
    write(tmp_path / "empty", "  \n")
    with pytest.raises(ConfigError, match="empty"):
        resolve_settings({}, env_for(tmp_path, ASSAY_API_KEY_FILE=str(tmp_path / "empty")))


def test_discovery_order(tmp_path):
    env = env_for(tmp_path)
    home_cfg = write(tmp_path / "home" / ".config" / "assay" / "config.yaml", "namespace: home\n")
    assert find_config(None, env) == home_cfg
    xdg_cfg = write(tmp_path / "xdg" / "assay" / "config.yaml", "namespace: xdg\n")
    assert find_config(None, env) == xdg_cfg
    named = write(tmp_path / "named.yaml", "namespace: named\n")
    env["ASSAY_CONFIG_FILE"] = str(named)
    assert find_config(None, env) == named
    flagged = write(tmp_path / "flagged.yaml", "namespace: flagged\n")
    assert find_config(str(flagged), env) == flagged
    assert resolve_settings({"config": str(flagged)}, env).namespace == "flagged"


def test_explicit_config_must_exist_but_discovered_may_be_missing(tmp_path):
    env = env_for(tmp_path)
    assert find_config(None, env) is None
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml .*--config"):
        find_config(str(tmp_path / "nope.yaml"), env)
    env["ASSAY_CONFIG_FILE"] = str(tmp_path / "gone.yaml")
    with pytest.raises(ConfigError, match="ASSAY_CONFIG_FILE"):
        find_config(None, env)


def test_malformed_yaml_names_file_and_line(tmp_path):
    bad = write(tmp_path / "bad.yaml", "engine_url: http://x\nnamespace: [unclosed\noutput: json\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    msg = str(info.value)
    assert str(bad) in msg and "line 3" in msg


def test_non_mapping_config_and_unknown_keys(tmp_path):
    lst = write(tmp_path / "list.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(lst)
    odd = write(tmp_path / "odd.yaml", "namespace: ns1\ncolour: blue\n")
    s = resolve_settings({"config": str(odd)}, env_for(tmp_path))
    assert s.namespace == "ns1"
    assert any("colour" in w for w in s.warnings)
    assert load_config(write(tmp_path / "empty.yaml", "")) == {}


def test_bad_output_format_from_env_or_config(tmp_path):
    with pytest.raises(ConfigError, match="unknown output format 'xml' from ASSAY_OUTPUT"):
        resolve_settings({}, env_for(tmp_path, ASSAY_OUTPUT="xml"))
    cfg = write(tmp_path / "c.yaml", "output: csv\n")
    with pytest.raises(ConfigError, match="from config file"):
        resolve_settings({"config": str(cfg)}, env_for(tmp_path))
    assert resolve_settings({}, env_for(tmp_path, ASSAY_OUTPUT="ndjson")).output == "jsonl"
