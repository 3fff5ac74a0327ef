"""Organization profiles: what each organization's published policy says."""

from bot.profiles.loader import ProfileError, load_all, load_profile
from bot.profiles.schema import Profile

__all__ = ["Profile", "ProfileError", "load_all", "load_profile"]
