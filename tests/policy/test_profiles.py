import shutil
from pathlib import Path

import pytest
import yaml

from bot.policy.profiles.loader import DEFAULT_DIR, ProfileError, load_all, load_profile
from tests.conftest import POLICY_TEXTS

ORG_IDS = sorted(path.stem for path in POLICY_TEXTS.glob("*.txt"))


def test_there_is_one_profile_per_published_policy():
    assert ORG_IDS == [
        "benesse-kenpo",
        "coop-kyosai",
        "gunma-shoko-kyosai",
        "kokusai-kogyo-kenpo",
        "osaka-city-kyosai",
    ]
    assert sorted(load_all()) == ORG_IDS


@pytest.mark.parametrize("org_id", ORG_IDS)
def test_profile_names_the_organization_of_its_policy(org_id):
    profile = load_profile(org_id)
    policy = (POLICY_TEXTS / f"{org_id}.txt").read_text(encoding="utf-8")
    assert profile.name in policy
    assert profile.contact.name in policy


@pytest.mark.parametrize("org_id", ORG_IDS)
def test_published_phone_numbers_and_amounts_come_from_the_policy(org_id):
    profile = load_profile(org_id)
    policy = (POLICY_TEXTS / f"{org_id}.txt").read_text(encoding="utf-8")
    digits = "".join(ch for ch in policy if ch.isdigit())
    for number in filter(None, [profile.contact.phone, profile.contact.fax]):
        assert "".join(ch for ch in number if ch.isdigit()) in digits
    if profile.fees and profile.fees.amount_yen is not None:
        assert str(profile.fees.amount_yen) in policy


def _copy_with(tmp_path: Path, org_id: str, edit) -> Path:
    data = yaml.safe_load((DEFAULT_DIR / f"{org_id}.yml").read_text(encoding="utf-8"))
    edit(data)
    (tmp_path / f"{org_id}.yml").write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return tmp_path


def test_a_missing_required_field_names_the_file_and_the_field(tmp_path):
    directory = _copy_with(tmp_path, "kokusai-kogyo-kenpo", lambda d: d["contact"].pop("name"))
    with pytest.raises(ProfileError) as error:
        load_profile("kokusai-kogyo-kenpo", directory)
    assert "kokusai-kogyo-kenpo.yml" in str(error.value)
    assert "contact.name" in str(error.value)


def test_an_unknown_field_is_refused(tmp_path):
    directory = _copy_with(
        tmp_path, "kokusai-kogyo-kenpo", lambda d: d["facts"].update(opening_hours={"x": 1})
    )
    with pytest.raises(ProfileError, match=r"facts\.opening_hours"):
        load_profile("kokusai-kogyo-kenpo", directory)


def test_an_unknown_topic_is_refused(tmp_path):
    def edit(data):
        data["usage_purposes"]["categories"][0]["topics"] = ["pets"]

    directory = _copy_with(tmp_path, "kokusai-kogyo-kenpo", edit)
    with pytest.raises(ProfileError, match="unknown topic 'pets'"):
        load_profile("kokusai-kogyo-kenpo", directory)


def test_a_fee_amount_needs_a_fixed_fee_policy(tmp_path):
    def edit(data):
        data["fees"] = {"summary": "x", "source": "1.", "policy": "free", "amount_yen": 300}

    directory = _copy_with(tmp_path, "kokusai-kogyo-kenpo", edit)
    with pytest.raises(ProfileError, match="amount_yen"):
        load_profile("kokusai-kogyo-kenpo", directory)


def test_broken_yaml_and_wrong_id_fail_clearly(tmp_path):
    (tmp_path / "broken.yml").write_text("id: [unclosed", "utf-8")
    with pytest.raises(ProfileError, match=r"broken\.yml: cannot read profile"):
        load_profile("broken", tmp_path)
    shutil.copy(DEFAULT_DIR / "coop-kyosai.yml", tmp_path / "renamed.yml")
    with pytest.raises(ProfileError, match="must equal the file name"):
        load_profile("renamed", tmp_path)


def test_an_unknown_organization_lists_the_known_ones():
    with pytest.raises(ProfileError, match="known: benesse-kenpo"):
        load_profile("no-such-org")


def test_a_sixth_organization_is_one_more_file(tmp_path):
    for path in DEFAULT_DIR.glob("*.yml"):
        shutil.copy(path, tmp_path)
    _copy_with(tmp_path, "kokusai-kogyo-kenpo", lambda d: None)
    data = yaml.safe_load((DEFAULT_DIR / "kokusai-kogyo-kenpo.yml").read_text("utf-8"))
    data["id"] = "sample-kenpo"
    data["name"] = "サンプル健康保険組合"
    (tmp_path / "sample-kenpo.yml").write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    assert load_profile("sample-kenpo", tmp_path).name == "サンプル健康保険組合"
    assert len(load_all(tmp_path)) == 6
