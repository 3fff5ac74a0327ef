import shutil

import pytest

from bot.launcher import model_path, training_fingerprint
from bot.settings import DEFAULT_ORG, SettingsError, load_settings
from tests.conftest import ROOT


def test_defaults_need_no_environment():
    settings = load_settings({})
    assert settings.org_id == DEFAULT_ORG == "kokusai-kogyo-kenpo"
    assert (settings.rasa_port, settings.action_port) == (5005, 5055)
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith(
        "var/app.db"
    )
    assert settings.action_endpoint_url == "http://localhost:5055/webhook"


def test_environment_overrides_and_bad_ports_are_refused():
    settings = load_settings({"PRIVACY_BOT_ORG": "coop-kyosai", "RASA_PORT": "6005"})
    assert (settings.org_id, settings.rasa_port) == ("coop-kyosai", 6005)
    with pytest.raises(SettingsError, match="ACTION_PORT"):
        load_settings({"ACTION_PORT": "55x"})
    with pytest.raises(SettingsError, match="RASA_PORT"):
        load_settings({"RASA_PORT": "70000"})


def test_the_model_is_retrained_only_when_training_inputs_change(tmp_path):
    for name in ("config.yml", "domain.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "data", tmp_path / "data")
    shutil.copytree(ROOT / "bot" / "nlu", tmp_path / "bot" / "nlu")
    before = training_fingerprint(tmp_path)
    (tmp_path / "README.md").write_text("docs do not change the model", "utf-8")
    assert training_fingerprint(tmp_path) == before
    with (tmp_path / "data" / "rules.yml").open("a", encoding="utf-8") as rules:
        rules.write("\n")
    after = training_fingerprint(tmp_path)
    assert after != before
    assert model_path(tmp_path).name == f"privacy-assistant-{after}.tar.gz"
