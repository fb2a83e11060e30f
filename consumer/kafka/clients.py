"""The one Kafka client factory: every consumer, producer and admin client is built here.

Connection and security options (bootstrap servers, client id, SSL, SASL) come from
:class:`consumer.config.Settings`, so a cluster that needs TLS or SASL works the same for the
worker, ``replay``, ``explain``, ``demo`` and ``broker``. A plain string stands for a PLAINTEXT
bootstrap list (the embedded broker, tests). Call sites add only what is theirs (group, timing).
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from consumer.config import Settings

Connection = Settings | str
"""Where and how to connect: full settings, or a PLAINTEXT bootstrap list."""


def as_settings(connection: Connection) -> Settings:
    """``connection`` as settings (a bootstrap string keeps every other setting at its default)."""
    return connection if isinstance(connection, Settings) else Settings(bootstrap_servers=connection)


def client_options(connection: Connection, client_id: str | None = None) -> dict[str, Any]:
    """Connection options shared by consumers, producers and admin clients.

    ``client_id`` replaces the settings' client id, so each command shows up under its own name.
    """
    settings = as_settings(connection)
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": client_id or settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=settings.ssl_cafile or None,
            certfile=settings.ssl_certfile or None,
            keyfile=settings.ssl_keyfile or None,
        )
    if settings.security_protocol.startswith("SASL"):
        options |= {
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password,
        }
    return options


def new_consumer(
    connection: Connection, *, client_id: str | None = None, group_id: str | None = None, **options: Any
) -> AIOKafkaConsumer:
    """A consumer that commits only when told and starts from the earliest offset.

    Without ``group_id`` it joins no group: the caller assigns partitions (readers, restore).
    """
    defaults: dict[str, Any] = {"enable_auto_commit": False, "auto_offset_reset": "earliest"}
    return AIOKafkaConsumer(
        **client_options(connection, client_id), group_id=group_id, **(defaults | options)
    )


def new_producer(connection: Connection, *, client_id: str | None = None, **options: Any) -> AIOKafkaProducer:
    """A producer; ``options`` (acks, batching, compression, idempotence) are the caller's."""
    return AIOKafkaProducer(**client_options(connection, client_id), **options)


def new_admin(connection: Connection, *, client_id: str | None = None, **options: Any) -> AIOKafkaAdminClient:
    """An admin client, for creating and checking topics."""
    return AIOKafkaAdminClient(**client_options(connection, client_id), **options)
