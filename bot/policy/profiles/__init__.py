"""Organization profiles: what each organization's published policy says."""

from bot.policy.profiles.loader import ProfileError, load_all, load_profile
from bot.policy.profiles.schema import Profile

__all__ = ["Profile", "ProfileError", "load_all", "load_profile"]
