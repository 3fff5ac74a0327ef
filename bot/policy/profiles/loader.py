"""Load and validate organization profiles from YAML files.

A sixth organization is one more ``<id>.yml`` in the profile folder: nothing else.
A broken profile stops the process at start-up with the file and field it breaks.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from bot.policy.profiles.schema import Profile

DEFAULT_DIR = Path(__file__).with_name("data")


class ProfileError(Exception):
    """A profile file is missing, unreadable or does not match the schema."""


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"] if part != "__root__")
        parts.append(f"{field}: {item['msg']}" if field else item["msg"])
    return "; ".join(parts)


def load_profile_file(path: Path) -> Profile:
    """Read one profile file and validate it.

    Raises:
        ProfileError: naming the file and every field that is wrong.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ProfileError(f"{path}: cannot read profile: {error}") from error
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: a profile must be a mapping of fields")
    try:
        profile = Profile.parse_obj(raw)
    except ValidationError as error:
        raise ProfileError(f"{path}: {_describe(error)}") from error
    if profile.id != path.stem:
        raise ProfileError(f"{path}: id: {profile.id!r} must equal the file name {path.stem!r}")
    return profile


def available_ids(directory: Path = DEFAULT_DIR) -> list[str]:
    """The organization ids that have a profile file."""
    return sorted(path.stem for path in directory.glob("*.yml"))


def load_profile(org_id: str, directory: Path = DEFAULT_DIR) -> Profile:
    """Load the profile of ``org_id`` from ``directory``."""
    path = directory / f"{org_id}.yml"
    if not path.is_file():
        known = ", ".join(available_ids(directory)) or "none"
        raise ProfileError(f"{path}: no profile for organization {org_id!r} (known: {known})")
    return load_profile_file(path)


def load_all(directory: Path = DEFAULT_DIR) -> dict[str, Profile]:
    """Load and validate every profile in ``directory``."""
    return {org_id: load_profile(org_id, directory) for org_id in available_ids(directory)}


@cache
def cached_profile(org_id: str, directory: str = str(DEFAULT_DIR)) -> Profile:
    """The profile of ``org_id``, loaded once per process."""
    return load_profile(org_id, Path(directory))
