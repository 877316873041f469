"""The OPC UA driver against the simulated line PLC, over real TCP on 127.0.0.1: subscribe,
poll, write, security None / Basic256Sha256 / Aes128_Sha256_RsaOaep, bad nodes, bad
certificates, identity, restart, namespace renumbering and stall."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from drivers.base import DeviceFault, DeviceOffline, Reading, WriteRejected
from drivers.opcua import OpcUaDriver
from drivers.opcua.security import fingerprint
from firmware_sim.line_plc import LinePlcSim
from gateway.packml import PackMLState
from tests.support.loop import BackgroundLoop
from tests.support.net import free_port
from tests.support.opcua import Pki, device_config, make_pki, plc_config, secure

pytestmark = pytest.mark.integration

T = TypeVar("T")


class Plc:
    """A simulated PLC running on a background loop, shared by the tests of this module."""

    def __init__(self, bg: BackgroundLoop, sim: LinePlcSim, pki: Pki) -> None:
        self.bg, self.sim, self.pki = bg, sim, pki

    def run(self, coro: Awaitable[T], timeout: float = 20) -> T:
        async def bounded() -> T:
            return await asyncio.wait_for(coro, timeout)

        return self.bg.run(bounded(), timeout + 5)


@pytest.fixture(scope="module")
def plc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plc]:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    cfg = plc_config(
        security_policies=[
            "None",
            "Basic256Sha256_SignAndEncrypt",
            "Aes128_Sha256_RsaOaep_Sign",
        ],
        certificate=pki.server_cert,
        private_key=pki.server_key,
        trusted_client_certificates=[pki.client_cert],
        batch_secs=3600,  # one long batch: bags are counted whenever a test looks
    )
    with BackgroundLoop() as bg:
        sim = LinePlcSim(cfg)
        bg.run(sim.start(), 30)
        try:
            yield Plc(bg, sim, pki)
        finally:
            bg.run(sim.stop(), 30)


def run(coro: Awaitable[T], timeout: float = 30) -> T:
    """For tests with their own PLC: one event loop, a hard upper bound."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def read_for(driver: OpcUaDriver, seconds: float) -> list[Reading]:
    out: list[Reading] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out.append(await asyncio.wait_for(driver.read(), 5))
    return out


async def read_until(driver: OpcUaDriver, pred: Any, within: float, what: str) -> Reading:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        reading = await asyncio.wait_for(driver.read(), 5)
        if pred(reading):
            return reading
    raise AssertionError(f"no reading with {what} within {within} s")


# -- reading ---------------------------------------------------------------------------------------
def test_subscribe_reports_what_changed_matching_the_plc(plc: Plc) -> None:
    async def scenario() -> list[Reading]:
        driver = OpcUaDriver(device_config(plc.sim.endpoint))
        await driver.connect()
        try:
            return await read_for(driver, 1.5)
        finally:
            await driver.close()

    readings = plc.run(scenario())
    first = readings[0]
    assert set(first.values) >= {"state", "mode", "bag_count", "batch_number", "speed"}
    assert not first.errors
    assert first.device == "plc1" and first.ts.tzinfo is not None
    later = readings[1:]
    assert later and all(len(r.values) < len(first.values) for r in later)  # changes only
    counts = [r.values["bag_count"] for r in readings if "bag_count" in r.values]
    assert counts == sorted(counts) and counts[-1] > counts[0]  # 10 bags/s while executing
    assert counts[-1] <= plc.sim.model.bag_count
    for r in readings:
        if "state" in r.values and "state_name" in r.values:
            assert r.values["state_name"] == PackMLState(int(r.values["state"])).label


def test_report_all_gives_every_tag_in_every_reading(plc: Plc) -> None:
    async def scenario() -> list[Reading]:
        driver = OpcUaDriver(device_config(plc.sim.endpoint, report="all"))
        await driver.connect()
        try:
            return await read_for(driver, 0.6)
        finally:
            await driver.close()

    readings = plc.run(scenario())
    assert len(readings) >= 3
    assert all(set(r.values) == set(readings[0].values) for r in readings)


def test_poll_mode_reads_every_tag_each_tick(plc: Plc) -> None:
    async def scenario() -> tuple[list[Reading], float]:
        driver = OpcUaDriver(device_config(plc.sim.endpoint, mode="poll", poll_interval_ms=100))
        await driver.connect()
        try:
            started = time.monotonic()
            readings = [await driver.read() for _ in range(8)]  # the first read is immediate
            return readings, time.monotonic() - started
        finally:
            await driver.close()

    readings, took = plc.run(scenario())
    assert 0.6 <= took < 1.2
    assert all(set(r.values) == set(readings[0].values) for r in readings)
    assert len(readings[0].values) == 14 and not readings[0].errors


# -- writing ---------------------------------------------------------------------------------------
def test_write_starts_a_batch_through_the_command_tags(plc: Plc) -> None:
    async def scenario() -> Reading:
        driver = OpcUaDriver(device_config(plc.sim.endpoint))
        await driver.connect()
        try:
            await driver.write("cmd_batch", "20261122-L1-77")
            await driver.write("cmd_product", "精制盐 1 kg")
            await driver.write("cmd_start", True)
            return await read_until(
                driver,
                lambda r: r.values.get("batch_number") == "20261122-L1-77",
                5,
                "the commanded batch",
            )
        finally:
            await driver.close()

    plc.run(scenario())
    model = plc.sim.model
    assert model.batch == "20261122-L1-77" and model.product == "精制盐 1 kg"
    assert model.state in (PackMLState.STARTING, PackMLState.EXECUTE)
    assert model.remote  # a command stops the automatic schedule


def test_bad_writes_are_refused_with_the_reason(plc: Plc) -> None:
    async def scenario() -> list[Exception]:
        cfg = device_config(plc.sim.endpoint)
        cfg.tags["bag_count"].writable = True  # writable in our map, read-only on the PLC
        driver = OpcUaDriver(cfg)
        errors: list[Exception] = []
        await driver.connect()
        try:
            for tag, value in (
                ("no_such_tag", 1),
                ("state", 6),
                ("cmd_start", "yes"),
                ("cmd_batch", 42),
                ("bag_count", -1),
                ("bag_count", 7),
            ):
                try:
                    await driver.write(tag, value)
                except (WriteRejected, DeviceFault) as exc:
                    errors.append(exc)
            await driver.read()  # the session survived every refusal
        finally:
            await driver.close()
        return errors

    errors = plc.run(scenario())
    texts = [str(e) for e in errors]
    assert len(errors) == 6
    assert isinstance(errors[0], WriteRejected) and "no tag 'no_such_tag'" in texts[0]
    assert isinstance(errors[1], WriteRejected) and "'state'" in texts[1]
    assert "not writable" in texts[1]
    assert isinstance(errors[2], WriteRejected)
    assert "'cmd_start'" in texts[2] and "Line1.Cmd_StartBatch" in texts[2]
    assert "Boolean" in texts[2]
    assert isinstance(errors[3], WriteRejected) and "expected a string" in texts[3]
    assert isinstance(errors[4], WriteRejected) and "out of range 0..4294967295" in texts[4]
    assert isinstance(errors[5], DeviceFault) and "refused writing 7" in texts[5]
    assert "Bad" in texts[5]


# -- bad nodes -------------------------------------------------------------------------------------
def test_unknown_nodes_and_wrong_types_are_tag_errors_naming_tag_and_node(plc: Plc) -> None:
    tags: dict[str, Any] = {
        "bag_count": {"node": "s=Line1.BagCount", "type": "UInt32"},
        "typo": {"node": "s=Line1.BagCnt"},
        "lost": {"browse_path": "0:Objects/Line1/NoSuchThing"},
        "wrong_type": {"node": "s=Line1.Speed", "type": "Int32"},
        "folder": {"node": "s=Line1"},
        "other_ns": {"node": "ns=7;s=Line1.BagCount"},
    }

    async def scenario() -> tuple[list[Reading], dict[str, str]]:
        driver = OpcUaDriver(device_config(plc.sim.endpoint, tags=tags))
        await driver.connect()
        try:
            return await read_for(driver, 0.5), driver.unresolved
        finally:
            await driver.close()

    readings, unresolved = plc.run(scenario())
    assert set(unresolved) == {"typo", "lost", "wrong_type", "folder", "other_ns"}
    assert all(set(r.errors) == set(unresolved) for r in readings)  # in every Reading
    assert any("bag_count" in r.values for r in readings)
    errs = readings[0].errors
    assert "tag 'typo' (node 's=Line1.BagCnt')" in errs["typo"]
    assert "BadNodeIdUnknown" in errs["typo"]
    assert "tag 'lost' (browse path '0:Objects/Line1/NoSuchThing')" in errs["lost"]
    assert "holds Double, the tag map says type Int32" in errs["wrong_type"]
    assert "not a variable" in errs["folder"]
    assert "ns=7;s=Line1.BagCount" in errs["other_ns"]


def test_nothing_resolvable_or_a_missing_namespace_is_a_fault(plc: Plc) -> None:
    async def scenario() -> list[str]:
        out = []
        for cfg in (
            device_config(plc.sim.endpoint, tags={"x": {"node": "s=Nope"}}),
            device_config(plc.sim.endpoint, namespace_uri="urn:not:there"),
        ):
            driver = OpcUaDriver(cfg)
            with pytest.raises(DeviceFault) as info:
                await driver.connect()
            out.append(str(info.value))
            await driver.close()
        return out

    nothing, missing = plc.run(scenario())
    assert "no tag could be resolved" in nothing and "s=Nope" in nothing
    assert "namespace 'urn:not:there' is not on the server" in missing
    assert "2: urn:saltgw:sim:line-plc" in missing


def test_closed_port_is_offline() -> None:
    async def scenario() -> None:
        driver = OpcUaDriver(device_config(f"opc.tcp://127.0.0.1:{free_port()}"))
        with pytest.raises(DeviceOffline, match="not connected"):
            await driver.read()
        with pytest.raises(DeviceOffline, match="connection refused"):
            await driver.connect()
        await driver.close()
        await driver.close()  # idempotent

    run(scenario())


# -- security --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "mode"),
    [("Basic256Sha256", "SignAndEncrypt"), ("Aes128_Sha256_RsaOaep", "Sign")],
)
def test_secure_channel_reads_and_writes(plc: Plc, policy: str, mode: str) -> None:
    async def scenario() -> Reading:
        cfg = device_config(plc.sim.endpoint, security=secure(plc.pki, policy, mode))
        driver = OpcUaDriver(cfg)
        await driver.connect()
        try:
            await driver.write("cmd_shift", f"S-{policy}")
            return await read_until(
                driver, lambda r: "bag_count" in r.values, 3, "a bag count over the channel"
            )
        finally:
            await driver.close()

    reading = plc.run(scenario())
    assert isinstance(reading.values["bag_count"], int)


def test_untrusted_server_certificate_is_a_fault_with_its_fingerprint(plc: Plc) -> None:
    sec = secure(plc.pki) | {"trusted_server_certificates": [str(plc.pki.other_cert)]}

    async def scenario() -> str:
        driver = OpcUaDriver(device_config(plc.sim.endpoint, security=sec))
        with pytest.raises(DeviceFault) as info:
            await driver.connect()
        return str(info.value)

    msg = plc.run(scenario())
    assert "is not trusted" in msg and "trusted_server_certificates" in msg
    assert fingerprint(plc.pki.server_cert.read_bytes()) in msg


def test_server_refusing_our_certificate_is_a_fault_saying_so(plc: Plc) -> None:
    sec = secure(plc.pki) | {
        "certificate": str(plc.pki.other_cert),
        "private_key": str(plc.pki.other_key),
    }

    async def scenario() -> str:
        driver = OpcUaDriver(device_config(plc.sim.endpoint, security=sec))
        with pytest.raises(DeviceFault) as info:
            await driver.connect()
        return str(info.value)

    msg = plc.run(scenario())
    assert "BadCertificateUntrusted" in msg
    assert "does not accept our client certificate" in msg and "other.der" in msg


def test_policy_the_server_does_not_offer_is_a_fault_listing_what_it_offers(plc: Plc) -> None:
    sec = secure(plc.pki, "Aes128_Sha256_RsaOaep", "SignAndEncrypt")

    async def scenario() -> str:
        driver = OpcUaDriver(device_config(plc.sim.endpoint, security=sec))
        with pytest.raises(DeviceFault) as info:
            await driver.connect()
        return str(info.value)

    msg = plc.run(scenario())
    assert "no endpoint with policy Aes128_Sha256_RsaOaep and mode SignAndEncrypt" in msg
    assert "Basic256Sha256/SignAndEncrypt" in msg


def test_user_identity_from_the_environment_and_a_trust_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    identity = {"username": "operator", "password_env": "TEST_PLC_PASSWORD"}
    pki = make_pki(tmp_path / "pki")
    trust_dir = tmp_path / "trusted"
    sim_cfg = plc_config(
        username="operator",
        password="s3cret",
        security_policies=["None", "Basic256Sha256_SignAndEncrypt"],
        export_certificate=trust_dir / "plc.der",  # made at start: nobody knew it before
    )

    async def scenario() -> tuple[list[str], Reading]:
        sim = LinePlcSim(sim_cfg)
        await sim.start()
        faults = []
        try:
            cfg = device_config(sim.endpoint, identity=identity)
            for password in (None, "wrong", "s3cret"):
                if password is None:
                    monkeypatch.delenv("TEST_PLC_PASSWORD", raising=False)
                else:
                    monkeypatch.setenv("TEST_PLC_PASSWORD", password)
                driver = OpcUaDriver(cfg)
                try:
                    await driver.connect()
                    await driver.read()
                except DeviceFault as exc:
                    faults.append(str(exc))
                finally:
                    await driver.close()
            anonymous = OpcUaDriver(device_config(sim.endpoint))
            with pytest.raises(DeviceFault) as info:
                await anonymous.connect()
            faults.append(str(info.value))
            sec = secure(pki) | {"trusted_server_certificates": [], "trust_dir": str(trust_dir)}
            driver = OpcUaDriver(device_config(sim.endpoint, identity=identity, security=sec))
            await driver.connect()  # the password travels inside the encrypted channel
            try:
                reading = await driver.read()
            finally:
                await driver.close()
        finally:
            await sim.stop()
        return faults, reading

    (missing, wrong, anonymous), reading = run(scenario())
    assert "'TEST_PLC_PASSWORD'" in missing and "is not set" in missing
    assert "BadUserAccessDenied" in wrong and "identity" in wrong
    assert "BadIdentityTokenRejected" in anonymous
    assert "bag_count" in reading.values


# -- recovery --------------------------------------------------------------------------------------
def test_restart_and_namespace_renumbering_are_followed_on_reconnect(tmp_path: Path) -> None:
    literal = {"bag_count": {"node": "s=Line1.BagCount"}, "pinned": {"node": "ns=2;s=Line1.Mode"}}

    async def reconnect(driver: OpcUaDriver, within: float) -> float:
        started = time.monotonic()
        while True:
            try:
                await driver.connect()
                return time.monotonic() - started
            except DeviceOffline:
                if time.monotonic() - started > within:
                    raise
                await asyncio.sleep(0.2)

    async def scenario() -> dict[str, Any]:
        sim = LinePlcSim(plc_config())
        await sim.start()
        driver = OpcUaDriver(device_config(sim.endpoint, tags=literal))
        out: dict[str, Any] = {}
        try:
            await driver.connect()
            before = await driver.read()
            out["errors_before"] = dict(before.errors)
            restart = asyncio.create_task(sim.restart())
            with pytest.raises(DeviceOffline) as info:
                await read_for(driver, 10)
            out["lost"] = str(info.value)
            await driver.close()
            await restart
            out["reconnect_secs"] = await reconnect(driver, 10)
            out["after_restart"] = await driver.read()
            await driver.close()
            await sim.change_namespace()
            out["reconnect_ns_secs"] = await reconnect(driver, 10)
            out["after_ns"] = await read_until(
                driver, lambda r: "bag_count" in r.values, 3, "bag count after renumbering"
            )
            out["index"] = sim.namespace_index
        finally:
            await driver.close()
            await sim.stop()
        return out

    out = run(scenario(), 60)
    assert out["errors_before"] == {}
    assert "opc.tcp server" in out["lost"]
    assert out["reconnect_secs"] < 2 and out["reconnect_ns_secs"] < 2
    assert "bag_count" in out["after_restart"].values
    assert out["index"] == 3
    after_ns: Reading = out["after_ns"]
    assert isinstance(after_ns.values["bag_count"], int)  # re-resolved in namespace 3
    assert set(after_ns.errors) == {"pinned"}  # a literal ns=2 cannot follow
    assert "ns=2;s=Line1.Mode" in after_ns.errors["pinned"]


def test_a_stalled_plc_is_offline_within_the_stall_timeout_and_comes_back() -> None:
    async def scenario() -> dict[str, Any]:
        sim = LinePlcSim(plc_config(batch_secs=3600))
        await sim.start()
        driver = OpcUaDriver(
            device_config(
                sim.endpoint,
                stall_timeout_ms=1500,
                watchdog_interval_ms=5000,
                connect_timeout_ms=1000,
            )
        )
        out: dict[str, Any] = {}
        try:
            await driver.connect()
            await read_until(driver, lambda r: "bag_count" in r.values, 3, "bags")
            sim.stall(6)
            bags_before = sim.model.bag_count
            started = time.monotonic()
            with pytest.raises(DeviceOffline) as info:
                await read_for(driver, 8)
            out["lost"], out["noticed"] = str(info.value), time.monotonic() - started
            await driver.close()
            out["closed"] = time.monotonic() - started
            with pytest.raises(DeviceOffline) as again:  # a stalled PLC does not answer
                await driver.connect()
            out["during"] = str(again.value)
            out["closed_at"] = time.monotonic() - started
            await asyncio.sleep(max(0.0, 6.2 - (time.monotonic() - started)))
            await driver.connect()
            first = await read_until(driver, lambda r: "bag_count" in r.values, 3, "bags")
            out["jump"] = int(first.values["bag_count"]) - bags_before
        finally:
            await driver.close()
            await sim.stop()
        return out

    out = run(scenario())
    assert "stalled" in out["lost"] or "lost" in out["lost"]
    assert out["noticed"] < 3.0
    assert "took longer than 1000 ms" in out["during"]
    assert 0 <= out["jump"] <= 10  # the line stood still too: no burst of bags afterwards
