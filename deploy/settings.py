"""The service's settings: environment (``STORYLINE_*``) first, command-line flags on top."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TOKEN_MIN_CHARS = 16


class ServiceSettings(BaseSettings):
    """Everything `storyline serve` needs; nothing about jobs, which live in the stores."""

    model_config = SettingsConfigDict(env_prefix="STORYLINE_", frozen=True)

    token: SecretStr = Field(
        description=f"bearer token every request but /healthz must carry (>= {TOKEN_MIN_CHARS} "
        "characters); or STORYLINE_TOKEN_FILE"
    )
    token_file: Path | None = Field(
        default=None, description="file holding the token (a mounted Kubernetes secret)"
    )
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

    @model_validator(mode="before")
    @classmethod
    def _token_from_file(cls, data: Any) -> Any:
        """A token file fills in a missing token; giving both is ambiguous, so refused."""
        if not isinstance(data, dict) or not data.get("token_file"):
            return data
        if data.get("token"):
            raise ValueError("give STORYLINE_TOKEN or STORYLINE_TOKEN_FILE, not both")
        try:
            token = Path(data["token_file"]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read the token file: {exc}") from exc
        return {**data, "token": token}

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: SecretStr) -> SecretStr:
        if len(token.get_secret_value().strip()) < TOKEN_MIN_CHARS:
            raise ValueError(
                f"the token must hold at least {TOKEN_MIN_CHARS} characters; make one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return token
