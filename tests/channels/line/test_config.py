"""The channel's settings: credentials.yml, the environment, and Rasa reading them."""

from __future__ import annotations

import logging

import pytest

from bot.channels.line.api import DEFAULT_API_BASE_URL
from bot.channels.line.channel import LineInput
from bot.channels.line.config import LineConfig, resolve_env
from tests.channels.line.support import LINE_ENV
from tests.conftest import ROOT


def test_env_references_are_resolved_and_unset_ones_are_empty():
    env = {"LINE_CHANNEL_SECRET": "s3cret", "HOST": "example.org"}
    assert resolve_env("${LINE_CHANNEL_SECRET}", env) == "s3cret"
    assert resolve_env("${LINE_CHANNEL_ACCESS_TOKEN}", env) == ""
    assert resolve_env("https://${HOST}/line", env) == "https://example.org/line"
    assert resolve_env("literal", env) == "literal"
    assert resolve_env(None, env) == ""


def test_config_from_the_environment():
    on = LineConfig.from_credentials(
        None,
        {
            "LINE_CHANNEL_SECRET": "s",
            "LINE_CHANNEL_ACCESS_TOKEN": "t",
            "LINE_API_BASE_URL": "http://127.0.0.1:9/",
        },
    )
    assert on.enabled and on.api_base_url == "http://127.0.0.1:9"
    assert "s" not in repr(on).replace("LineConfig", "").split("api_base_url")[0].strip("(")
    off = LineConfig.from_credentials({"channel_secret": "${LINE_CHANNEL_SECRET}"}, {})
    assert not off.enabled
    assert off.missing == ["LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN"]
    assert off.api_base_url == DEFAULT_API_BASE_URL
    limits = LineConfig.from_credentials(
        {"max_messages_per_minute": 5, "max_message_chars": "300"}, {}
    )
    assert (limits.max_per_minute, limits.max_chars) == (5, 300)


def test_secrets_stay_out_of_repr():
    config = LineConfig("the-secret", "the-token", "https://api.line.me")
    assert "the-secret" not in repr(config) and "the-token" not in repr(config)


@pytest.mark.parametrize(
    "credentials",
    [{"api_base_url": "ftp://x"}, {"max_messages_per_minute": 0}, {"max_message_chars": "x"}],
)
def test_bad_settings_are_refused(credentials):
    with pytest.raises(ValueError):
        LineConfig.from_credentials(credentials, {})


def test_rasa_reads_credentials_yml_without_the_variables_and_the_channel_is_off(
    monkeypatch, caplog
):
    import rasa.core.run
    import rasa.shared.utils.io

    for name in LINE_ENV:
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.INFO, logger="bot.channels.line")
    credentials = rasa.shared.utils.io.read_config_file(str(ROOT / "credentials.yml"))
    entry = credentials["bot.channels.line.LineInput"]
    channel = rasa.core.run._create_single_channel("bot.channels.line.LineInput", entry)
    assert isinstance(channel, LineInput)
    assert not channel.config.enabled
    assert channel.name() == "line" and channel.url_prefix() == "line"
    off = [r.getMessage() for r in caplog.records if "LINE channel off" in r.getMessage()]
    assert off == [
        "LINE channel off: LINE_CHANNEL_SECRET and LINE_CHANNEL_ACCESS_TOKEN not set"
        " (see docs/channels.md)"
    ]


def test_credentials_yml_picks_up_the_variables(monkeypatch, caplog):
    import rasa.shared.utils.io

    monkeypatch.setenv("LINE_CHANNEL_SECRET", "s")
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", "t")
    monkeypatch.setenv("LINE_API_BASE_URL", "http://127.0.0.1:9")
    caplog.set_level(logging.INFO, logger="bot.channels.line")
    credentials = rasa.shared.utils.io.read_config_file(str(ROOT / "credentials.yml"))
    channel = LineInput.from_credentials(credentials["bot.channels.line.LineInput"])
    assert channel.config.enabled
    assert channel.config.api_base_url == "http://127.0.0.1:9"
    assert any("LINE channel on" in r.getMessage() for r in caplog.records)
