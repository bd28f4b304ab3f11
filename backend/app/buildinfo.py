"""Build metadata of the running service.

The container image sets APP_VERSION, APP_REVISION and APP_BUILT from the
build arguments VERSION, GIT_COMMIT and BUILD_DATE. Outside an image (tests,
a developer's shell) they are usually unset and read as "unknown".
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

UNKNOWN = "unknown"


@dataclass(frozen=True)
class BuildInfo:
    version: str
    revision: str
    built: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or UNKNOWN


def current() -> BuildInfo:
    """Read the build metadata from the environment (on every call, so it is never stale)."""
    return BuildInfo(
        version=_env("APP_VERSION"),
        revision=_env("APP_REVISION"),
        built=_env("APP_BUILT"),
    )
