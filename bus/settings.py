"""Where the bus goes: one settings object from flags, the environment and a config file.

``STRIDECUE_MQTT_URL`` (or ``--mqtt``) is ``mqtt://[user[:password]@]host[:port]``,
``mqtts://…`` (TLS; ``STRIDECUE_MQTT_CA_FILE`` for a private CA), or ``embedded`` (an in-process
broker on 127.0.0.1). The config file is TOML (``STRIDECUE_CONFIG``, default
``~/.config/stridecue/config.toml``) with the same keys in lower case without the prefix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

EMBEDDED = "embedded"
DEFAULT_CONFIG = Path("~/.config/stridecue/config.toml")


class BusError(Exception):
    """Root of the bus's errors; the message says what to do."""


class BrokerUrlError(BusError, ValueError):
    pass


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """A broker to connect to. ``password`` never appears in ``str()`` or logs."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None

    @property
    def url(self) -> str:
        """The broker's address without credentials, for messages and logs."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"BrokerConfig({self.url!r})"

    @classmethod
    def from_url(cls, url: str, ca_file: Path | None = None) -> BrokerConfig:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise BrokerUrlError(
                f"broker URL {url.split('@')[-1]!r}: use mqtt://host[:port], mqtts://host[:port] "
                f"or '{EMBEDDED}'"
            )
        if not parts.hostname:
            raise BrokerUrlError(f"broker URL {parts.scheme}://…: no host name")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            msg = f"broker URL for {parts.hostname}: the port is not a number"
            raise BrokerUrlError(msg) from None
        return cls(
            host=parts.hostname,
            port=port,
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            ca_file=ca_file,
        )


class Settings(BaseSettings):
    """Stridecue's settings. Precedence: flags > environment (``STRIDECUE_*``) > config file."""

    model_config = SettingsConfigDict(env_prefix="STRIDECUE_", extra="ignore")

    mqtt_url: str | None = Field(default=None, description="Broker URL, or 'embedded'.")
    mqtt_ca_file: Path | None = Field(default=None, description="CA bundle for mqtts://.")
    mqtt_steps: bool = Field(default=False, description="Also publish every step (QoS 0).")
    athlete_id: str = Field(default="athlete", description="Topic-safe athlete id.")
    data_dir: Path = Field(
        default=Path("~/.local/share/stridecue"),
        description="Where the publisher keeps its outbox (and the server its database).",
    )

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
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config)
        return (init_settings, env_settings, toml)

    @classmethod
    def load(cls, **flags: Any) -> Settings:
        """Settings with the given flags on top (``None`` flags are not set)."""
        return cls(**{k: v for k, v in flags.items() if v is not None})

    @property
    def embedded(self) -> bool:
        return self.mqtt_url == EMBEDDED

    def broker(self) -> BrokerConfig | None:
        """The broker to connect to, ``None`` without one (or for the embedded broker)."""
        if self.mqtt_url is None or self.embedded:
            return None
        return BrokerConfig.from_url(self.mqtt_url, self.mqtt_ca_file)

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser()
