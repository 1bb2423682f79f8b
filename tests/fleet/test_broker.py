"""The broker the city layer runs on, as the tests start it: its ACLs refuse a site that
writes another site's topics or the EOC's, and TLS works with the certificate the test made."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiomqtt
import pytest

from tools.mqtt_broker import EOC_PASSWORD, EOC_USER, Broker, SiteAccount

SITES = [SiteAccount("kadikoy", "school-1"), SiteAccount("kadikoy", "school-2")]


@pytest.fixture
def broker(tmp_path: Path):  # type: ignore[no-untyped-def]
    b = Broker(tmp_path / "broker", SITES)
    b.start()
    yield b
    b.stop()


def client(broker: Broker, user: str, password: str, **kwargs):  # type: ignore[no-untyped-def]
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=user,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        **kwargs,
    )


async def test_a_site_may_write_only_its_own_topics(broker: Broker) -> None:
    one = SITES[0]
    async with (
        client(broker, EOC_USER, EOC_PASSWORD) as eoc,
        client(broker, one.username, one.password) as site,
    ):
        await eoc.subscribe("shelter/#", qos=1)
        await eoc.subscribe("eoc/v1/cmd/#", qos=1)
        # forged: school-1 writes as school-2, and as the EOC; then its own topic
        await site.publish("shelter/v1/kadikoy/school-2/event", b"forged", qos=1)
        await site.publish("eoc/v1/cmd/kadikoy/school-2", b"forged", qos=1)
        await site.publish("shelter/v1/kadikoy/school-1/event", b"own", qos=1)
        async with asyncio.timeout(5):
            message = await anext(aiter(eoc.messages))
        # the broker delivers one publisher's messages in order: the forged ones were dropped
        assert (str(message.topic), message.payload) == (
            "shelter/v1/kadikoy/school-1/event",
            b"own",
        )


async def test_a_wrong_password_is_refused(broker: Broker) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with client(broker, SITES[0].username, "wrong"):
            pass


async def test_tls_with_the_certificate_the_test_made(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", SITES, tls=True)
    broker.start()
    try:
        assert broker.ca_file is not None
        context = ssl.create_default_context(cafile=str(broker.ca_file))
        async with client(broker, EOC_USER, EOC_PASSWORD, tls_context=context) as eoc:
            await eoc.subscribe("eoc/v1/status", qos=1)
            await eoc.publish("eoc/v1/status", b"online", qos=1)
            async with asyncio.timeout(5):
                message = await anext(aiter(eoc.messages))
            assert message.payload == b"online"
        with pytest.raises(aiomqtt.MqttError):  # no CA: the broker's certificate is unknown
            async with client(
                broker, EOC_USER, EOC_PASSWORD, tls_context=ssl.create_default_context()
            ):
                pass
    finally:
        broker.stop()
