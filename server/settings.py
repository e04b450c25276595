"""The companion's settings: where it stores, what it listens on, who may read, which broker.

Precedence: keyword arguments (the command's flags) > the environment (``STRIDECUE_*``) > the
config file (``STRIDECUE_CONFIG``, TOML, the same keys in lower case without the prefix), like
the publisher's :class:`bus.settings.Settings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bus.settings import DEFAULT_CONFIG, EMBEDDED, BrokerConfig
from bus.subscriber import check_share_group

MIN_TOKEN_CHARS = 16  # secrets.token_urlsafe() gives 43; a short token is guessable
DATABASE_FILE = "companion.sqlite"


class ServerSettings(BaseSettings):
    """Settings of ``stridecue serve``. The coach token is required and never shown."""

    model_config = SettingsConfigDict(env_prefix="STRIDECUE_", extra="ignore")

    coach_token: SecretStr = Field(
        description="Bearer token of the coach: required on every route but /api/health."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (sqlite:///…, postgresql+psycopg://…); default: a SQLite "
        f"file {DATABASE_FILE!r} in the data folder.",
    )
    host: str = Field(default="127.0.0.1", description="Address to bind.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port to bind (0: any free).")
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=0, description="Larger request bodies get 413."
    )
    max_upload_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="Larger uploaded logs get 413 (an hour of 200 Hz 6-axis samples is ~23 MB).",
    )
    max_queued_uploads: int = Field(
        default=8, ge=1, description="Uploads waiting for the replay worker; more get 503."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; none (closed) by default."
    )
    mqtt_url: str | None = Field(
        default=None, description="Broker to subscribe to (mqtt://, mqtts://, 'embedded')."
    )
    mqtt_ca_file: Path | None = Field(default=None, description="CA bundle for mqtts://.")
    mqtt_client_id: str | None = Field(
        default="stridecue-server",
        description="A fixed id keeps a persistent broker session: cues and reps published "
        "while the server restarts wait at the broker. None: a random id and a clean session.",
    )
    mqtt_share_group: str | None = Field(
        default=None,
        description="Run as one of several replicas: each stores its share of the stream "
        "(MQTT 5 shared subscription $share/<group>/…, one PostgreSQL for all) and still shows "
        "every message live; mqtt_client_id is then a prefix. See docs/scaling.md.",
    )
    live_queue_size: int = Field(
        default=256, ge=1, description="Messages buffered per live client before it is dropped."
    )
    data_dir: Path = Field(
        default=Path("~/.local/share/stridecue"),
        description="Where the default database lives, and uploads wait for their replay.",
    )

    @field_validator("coach_token")
    @classmethod
    def _long_enough(cls, token: SecretStr) -> SecretStr:
        if len(token.get_secret_value()) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"the coach token must be at least {MIN_TOKEN_CHARS} characters "
                "(leave it out and `stridecue serve` generates one)"
            )
        return token

    @field_validator("mqtt_share_group")
    @classmethod
    def _share_group(cls, group: str | None, info: ValidationInfo) -> str | None:
        if group is None:
            return None
        if info.data.get("mqtt_url") in (None, EMBEDDED):
            raise ValueError(
                "a share group needs mqtt_url (--mqtt) to name a broker with MQTT 5 shared "
                "subscriptions, such as Mosquitto; the embedded broker (amqtt) has none"
            )
        scheme = str(info.data.get("database_url") or "").split(":", 1)[0].split("+", 1)[0]
        if scheme not in ("postgresql", "postgres"):
            # Each replica stores only its share: on databases of their own, each would hold
            # a part of every session.
            raise ValueError(
                "the replicas of a share group store into one database: give each the same "
                "database_url (--database postgresql://…)"
            )
        return check_share_group(group)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config = Path(os.environ.get("STRIDECUE_CONFIG", DEFAULT_CONFIG)).expanduser()
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, config))

    @classmethod
    def load(cls, **flags: Any) -> ServerSettings:
        """Settings with the given flags on top (``None`` flags are not set)."""
        return cls(**{k: v for k, v in flags.items() if v is not None})

    @property
    def database(self) -> str:
        """The database URL, the default SQLite file when none is configured."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{self.data_dir.expanduser() / DATABASE_FILE}"

    @property
    def embedded(self) -> bool:
        return self.mqtt_url == EMBEDDED

    def broker(self) -> BrokerConfig | None:
        """The broker to subscribe to; ``None`` without one or for the embedded broker."""
        if self.mqtt_url is None or self.embedded:
            return None
        return BrokerConfig.from_url(self.mqtt_url, self.mqtt_ca_file)
