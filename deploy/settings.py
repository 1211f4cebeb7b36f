"""The service's settings: environment (``STORYLINE_*``) first, command-line flags on top."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Everything `storyline serve` needs; nothing about jobs, which live in the stores."""

    model_config = SettingsConfigDict(env_prefix="STORYLINE_", frozen=True)

    token: SecretStr = Field(description="bearer token every request but /healthz must carry")
    roots: tuple[str, ...] = Field(
        description="folders (or URL prefixes) that manifests, stores and checkpoints must lie in"
    )
    ray_address: str | None = Field(
        default=None, description="Ray dashboard URL (http://HEAD:8265); none: start a local head"
    )
    runtime_env: dict | None = Field(
        default=None, description="Ray runtime environment for submitted jobs (deploy/*.yaml)"
    )
    ray_status_ttl_s: float = Field(
        default=2.0, description="how long Ray's job list is reused between requests"
    )
