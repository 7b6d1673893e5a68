"""Kafka security settings reach both the aiokafka clients and FastStream's broker."""

from __future__ import annotations

from faststream.security import SASLPlaintext, SASLScram512

from sculptsvc.service.kafka import client_kwargs, faststream_security
from sculptsvc.settings import Settings


def test_plaintext_by_default() -> None:
    settings = Settings()
    kwargs = client_kwargs(settings)
    assert kwargs["security_protocol"] == "PLAINTEXT" and kwargs["ssl_context"] is None
    assert "sasl_mechanism" not in kwargs
    assert faststream_security(settings) is None


def test_sasl_ssl_passes_through(monkeypatch) -> None:
    monkeypatch.setenv("SCULPT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SCULPT_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("SCULPT_KAFKA_SASL_USERNAME", "sculpt")
    monkeypatch.setenv("SCULPT_KAFKA_SASL_PASSWORD", "s3cret")
    settings = Settings()
    kwargs = client_kwargs(settings)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["ssl_context"] is not None
    assert (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"]) == ("SCRAM-SHA-512", "sculpt")
    assert kwargs["sasl_plain_password"] == "s3cret"
    security = faststream_security(settings)
    assert isinstance(security, SASLScram512) and security.use_ssl
    assert "s3cret" not in repr(settings)  # the secret stays out of logs


def test_sasl_plaintext_without_tls() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
    )
    security = faststream_security(settings)
    assert isinstance(security, SASLPlaintext) and not security.use_ssl
    assert client_kwargs(settings)["ssl_context"] is None
