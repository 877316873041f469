"""Device profiles: how a kind of device's readings become events (gateway/profiles/base.py)."""

from gateway.profiles.base import Profile, ProfileConfigBase, ProfileSpec, Role
from gateway.profiles.registry import profile_names, profile_spec, profile_specs

__all__ = [
    "Profile",
    "ProfileConfigBase",
    "ProfileSpec",
    "Role",
    "profile_names",
    "profile_spec",
    "profile_specs",
]
