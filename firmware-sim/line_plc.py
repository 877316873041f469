"""A simulated packing-line PLC: an OPC UA server (asyncua) in front of the line model
(``line_model.py``: PackML states, bags, cases, batches).

Address space — object ``Objects/{line_name}`` (NodeId ``ns={idx};s={line_name}``) in namespace
``namespace_uri``; each variable has NodeId ``ns={idx};s={line_name}.{Name}`` and browse name
``{idx}:{Name}``:

    ===============  ========  =====  ============================================
    Name             type      write  meaning
    ===============  ========  =====  ============================================
    State            Int32            PackML state number (OPC 30050 / TR88.00.02)
    StateName        String           its name (Execute, Held, …)
    Mode             Int32            PackML unit mode (1 Production)
    Speed            Double           bags per minute (0 unless Execute)
    BagCount         UInt32           bags filled since power-on
    CaseCount        UInt32           cases packed since power-on
    BagsPerCase      UInt16           bags per case
    BatchNumber      String   yes     current batch ('' when none); writing it renames the batch
    Product          String           product of the batch
    Shift            String           shift of the batch
    FillWeight       Double           net weight of the last bag, g
    Iodine           Double           iodine content from the online analyser, mg/kg
    Cmd_BatchNumber  String   yes     batch number for Cmd_StartBatch
    Cmd_Product      String   yes     product for Cmd_StartBatch ('' = keep)
    Cmd_Shift        String   yes     shift for Cmd_StartBatch ('' = by the clock)
    Cmd_StartBatch   Boolean  yes     rising edge: start Cmd_BatchNumber; the PLC resets it
    Cmd_EndBatch     Boolean  yes     rising edge: complete the running batch; reset by the PLC
    ===============  ========  =====  ============================================

Command tags are plain variables: MES writes the parameters, then the trigger; the PLC acts
within one scan (50 ms) and writes the trigger back to false.

Methods of the line object, for MES commands bound to a method (docs/commands.md):

    ==========  ===========================  ===============================  ================
    Method      inputs                       outputs                          Bad status
    ==========  ===========================  ===============================  ================
    StartBatch  BatchNumber String,          Accepted Boolean,                BadInvalidArgument
                Product String ('' = keep)   BatchNumber String (now running)  (empty batch)
    EndBatch    —                            BatchNumber String (that ends)   BadInvalidState
                                                                              (no batch running)
    ==========  ===========================  ===============================  ================

NodeIds ``ns={idx};s={line_name}.StartBatch`` / ``….EndBatch``, browse names ``{idx}:StartBatch``
/ ``{idx}:EndBatch``. Both act at once (the new batch number is in BatchNumber when the call
returns); a wrong number or type of inputs is BadArgumentsMissing / BadTooManyArguments /
BadTypeMismatch, with the per-input status in InputArgumentResults.

Fault knobs: :meth:`restart` (the server stops and comes back on the same port: sessions and
subscriptions are gone), :meth:`change_namespace` (a restart after which the line's namespace
has another index), :meth:`stall` (the PLC freezes: values stop and requests go unanswered).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from firmware_sim.certs import make_certificate
from firmware_sim.line_model import LineModel
from firmware_sim.line_plc_config import LINE_PLC, LinePlcConfig

__all__ = ["LINE_PLC", "LinePlcConfig", "LinePlcSim"]

log = logging.getLogger(__name__)

SCAN_SECS = 0.05
_P = ua.SecurityPolicyType
_POLICY_TYPES = {
    "None": _P.NoSecurity,
    "Basic256Sha256_Sign": _P.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": _P.Basic256Sha256_SignAndEncrypt,
    "Aes128_Sha256_RsaOaep_Sign": _P.Aes128Sha256RsaOaep_Sign,
    "Aes128_Sha256_RsaOaep_SignAndEncrypt": _P.Aes128Sha256RsaOaep_SignAndEncrypt,
}
V = ua.VariantType
#: (name, type, writable by clients)
VARIABLES: tuple[tuple[str, ua.VariantType, bool], ...] = (
    ("State", V.Int32, False),
    ("StateName", V.String, False),
    ("Mode", V.Int32, False),
    ("Speed", V.Double, False),
    ("BagCount", V.UInt32, False),
    ("CaseCount", V.UInt32, False),
    ("BagsPerCase", V.UInt16, False),
    ("BatchNumber", V.String, True),
    ("Product", V.String, False),
    ("Shift", V.String, False),
    ("FillWeight", V.Double, False),
    ("Iodine", V.Double, False),
    ("FeedMaterial", V.String, False),
    ("FeedLot", V.String, False),
    ("FeedQtyKg", V.Double, False),
    ("FeedPoint", V.String, False),
    ("FeedOperator", V.String, False),
    ("FeedCount", V.UInt32, False),  # after the details: a client sees them with the count
    ("Cmd_BatchNumber", V.String, True),
    ("Cmd_Product", V.String, True),
    ("Cmd_Shift", V.String, True),
    ("Cmd_StartBatch", V.Boolean, True),
    ("Cmd_EndBatch", V.Boolean, True),
)


class _Transports(list[Any]):
    """asyncua's list of client connections: one made while the PLC stalls is paused before
    it reads anything."""

    def __init__(self, sim: LinePlcSim) -> None:
        super().__init__()
        self._sim = sim

    def append(self, transport: Any) -> None:
        super().append(transport)
        if self._sim.stalled:
            self._sim._pause(transport)


class _Users(UserManager):
    """asyncua user manager: one user name and password."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username == self.username and password == self.password:
            return User(role=UserRole.User, name=username)
        return None


def _der(data: bytes) -> bytes:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return data


class LinePlcSim:
    """The running simulator; see the module docstring for the address space."""

    def __init__(self, config: LinePlcConfig) -> None:
        self.config = config
        self.model = LineModel(config.settings(), random.Random(config.seed), time.monotonic())
        self._port = config.port
        self._server: Server | None = None
        self._nodes: dict[str, ua.NodeId] = {}
        self._written: dict[str, Any] = {}
        self._extra_namespaces = 0
        self._stalled_until = 0.0
        self._paused: set[Any] = set()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._cert: bytes | None = None
        self._key: bytes | None = None
        self.method_calls = 0  # StartBatch/EndBatch calls received
        self.application_uri = f"urn:saltgw:sim:line-plc:{config.id}"

    # --- public API -----------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The TCP port; the bound one once started (``port: 0`` picks a free one)."""
        return self._port

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.config.host}:{self._port}"

    @property
    def online(self) -> bool:
        return self._server is not None

    @property
    def namespace_index(self) -> int:
        """Index of the line's namespace in the running server's namespace array."""
        return 2 + self._extra_namespaces

    @property
    def certificate_der(self) -> bytes | None:
        """The server certificate (DER), once started with a secure policy."""
        return self._cert

    def node_id(self, name: str) -> str:
        """``ns=2;s=Line1.BagCount`` for ``BagCount`` in the running server."""
        return f"ns={self.namespace_index};s={self.config.line_name}.{name}"

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("line PLC already started")
        await self._load_certificate()
        await self._serve()
        self._task = asyncio.create_task(self._scan(), name=f"line-plc-{self.config.id}")
        log.info(
            "line PLC %r on %s (namespace %r index %d)",
            self.config.id,
            self.endpoint,
            self.config.namespace_uri,
            self.namespace_index,
        )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._shutdown()

    async def restart(self, down_secs: float = 0.0) -> None:
        """Stop the server (every session and subscription is lost) and start it again on the
        same port after ``down_secs``. The line keeps running meanwhile (retentive memory)."""
        await self._shutdown()
        log.info("line PLC %r restarting (down %.1f s)", self.config.id, down_secs)
        await asyncio.sleep(down_secs)
        await self._serve()

    async def change_namespace(self, down_secs: float = 0.0) -> None:
        """Restart with one more namespace registered before the line's: its index grows by 1."""
        self._extra_namespaces += 1
        await self.restart(down_secs)

    @property
    def stalled(self) -> bool:
        return time.monotonic() < self._stalled_until

    def stall(self, seconds: float) -> None:
        """Freeze for ``seconds``: no value changes, no answer to any request, new connections
        accepted but never answered, as a PLC whose communication processor hangs. The line's
        timers freeze too; afterwards everything goes on where it stopped."""
        self._stalled_until = time.monotonic() + seconds
        if self._server is not None:
            for transport in self._server.iserver.asyncio_transports:
                self._pause(transport)
        log.info("line PLC %r stalls for %.1f s", self.config.id, seconds)

    def _pause(self, transport: Any) -> None:
        if transport not in self._paused:
            transport.pause_reading()
            self._paused.add(transport)

    # --- server ---------------------------------------------------------------------------
    async def _load_certificate(self) -> None:
        cfg = self.config
        if cfg.security_policies == ["None"]:
            return
        if cfg.certificate is not None and cfg.private_key is not None:
            self._cert = _der(cfg.certificate.read_bytes())
            self._key = cfg.private_key.read_bytes()
        else:
            pair = make_certificate(self.application_uri, f"saltgw line PLC {cfg.id}", server=True)
            self._cert, self._key = pair.certificate_der, pair.private_key_pem
        if cfg.export_certificate is not None:
            cfg.export_certificate.parent.mkdir(parents=True, exist_ok=True)
            cfg.export_certificate.write_bytes(self._cert)

    async def _serve(self) -> None:
        async with self._lock:
            if self._server is not None:
                return
            server = await self._build()
            for attempt in range(50):  # the port may be briefly busy: keep it, it is our identity
                try:
                    await server.start()
                    break
                except OSError:
                    if attempt == 49:
                        raise
                    await asyncio.sleep(0.1)
            if server.bserver is not None and server.bserver.port:
                self._port = int(server.bserver.port)
            self._server = server
            self._written.clear()
            await self._publish()

    async def _build(self) -> Server:
        cfg = self.config
        users = _Users(cfg.username, cfg.password) if cfg.username and cfg.password else None
        server = Server(user_manager=users)
        await server.init()
        server.iserver.asyncio_transports = _Transports(self)
        server.set_endpoint(f"opc.tcp://{cfg.host}:{self._port}")
        server.set_server_name(f"saltgw line PLC simulator {cfg.id}")
        await server.set_application_uri(self.application_uri)
        server.set_security_policy([_POLICY_TYPES[p] for p in cfg.security_policies])
        if self._cert is not None and self._key is not None:
            await server.load_certificate(self._cert, format="der")
            await server.load_private_key(
                self._key, format="pem" if self._key.lstrip().startswith(b"-----") else "der"
            )
        if users is not None:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        if cfg.trusted_client_certificates is not None:
            server.set_certificate_validator(self._client_validator())
        for i in range(self._extra_namespaces):
            await server.register_namespace(f"urn:saltgw:sim:spare-{i + 1}")
        idx = await server.register_namespace(cfg.namespace_uri)
        line = await server.nodes.objects.add_object(
            _nid(cfg.line_name, idx), ua.QualifiedName(cfg.line_name, idx)
        )
        self._nodes = {}
        for name, vtype, writable in VARIABLES:
            node_id = _nid(f"{cfg.line_name}.{name}", idx)
            var = await line.add_variable(
                node_id, ua.QualifiedName(name, idx), ua.Variant(_initial(vtype), vtype)
            )
            if writable:
                await var.set_writable()
            self._nodes[name] = node_id
        await self._add_methods(line, idx)
        return server

    async def _add_methods(self, line: Any, idx: int) -> None:
        name = self.config.line_name
        await line.add_method(
            _nid(f"{name}.StartBatch", idx),
            ua.QualifiedName("StartBatch", idx),
            self._start_batch_method,
            [_arg("BatchNumber", "batch to start"), _arg("Product", "product ('' = keep)")],
            [_arg("Accepted", "the batch started", V.Boolean), _arg("BatchNumber", "running")],
        )
        await line.add_method(
            _nid(f"{name}.EndBatch", idx),
            ua.QualifiedName("EndBatch", idx),
            self._end_batch_method,
            [],
            [_arg("BatchNumber", "the batch that ends")],
        )

    async def _start_batch_method(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        self.method_calls += 1
        refused = _check_args(args, (V.String, V.String))
        if refused is not None:
            return refused
        number, product = (str(a.Value or "").strip() for a in args)
        if not number:
            log.warning("line PLC %r: StartBatch with an empty batch number", self.config.id)
            return ua.CallMethodResult(
                StatusCode=ua.StatusCode(ua.UInt32(ua.StatusCodes.BadInvalidArgument)),
                InputArgumentResults=[
                    ua.StatusCode(ua.UInt32(ua.StatusCodes.BadInvalidArgument)),
                    ua.StatusCode(),
                ],
            )
        log.info("line PLC %r: StartBatch %r", self.config.id, number)
        self.model.start_batch(number, product or None, None, datetime.now().astimezone())
        await self._publish()
        return [ua.Variant(True, V.Boolean), ua.Variant(self.model.batch, V.String)]

    async def _end_batch_method(self, parent: ua.NodeId, *args: ua.Variant) -> Any:
        self.method_calls += 1
        refused = _check_args(args, ())
        if refused is not None:
            return refused
        batch = self.model.batch
        if not batch:
            return ua.StatusCode(ua.UInt32(ua.StatusCodes.BadInvalidState))
        log.info("line PLC %r: EndBatch (%r)", self.config.id, batch)
        self.model.end_batch()
        await self._publish()
        return [ua.Variant(batch, V.String)]

    def _client_validator(self) -> Callable[[x509.Certificate, Any], Awaitable[None]]:
        paths = self.config.trusted_client_certificates or []
        trusted = {_der(p.read_bytes()) for p in paths}

        async def validate(cert: x509.Certificate, app: Any) -> None:
            if cert.public_bytes(Encoding.DER) not in trusted:
                log.warning("line PLC %r: untrusted client certificate rejected", self.config.id)
                raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

        return validate

    async def _shutdown(self) -> None:
        async with self._lock:
            server, self._server = self._server, None
            self._paused.clear()
            if server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.stop(), 5.0)

    # --- the PLC scan ---------------------------------------------------------------------
    async def _scan(self) -> None:
        while True:
            await asyncio.sleep(SCAN_SECS)
            try:
                if self._stalled():
                    continue
                if self._server is not None:
                    self._commands()
                self.model.step(time.monotonic(), datetime.now().astimezone())
                await self._publish()
            except Exception:  # a scan error must not kill the PLC
                log.exception("line PLC %r: scan failed", self.config.id)

    def _stalled(self) -> bool:
        now = time.monotonic()
        if now < self._stalled_until:
            return True
        if self._stalled_until:
            self._stalled_until = 0.0
            for transport in self._paused:
                with contextlib.suppress(Exception):
                    transport.resume_reading()
            self._paused.clear()
            self.model.freeze(now)  # the line's clock stood still: no burst of bags
        return False

    def _read(self, name: str) -> Any:
        assert self._server is not None
        dv = self._server.read_attribute_value(self._nodes[name])
        return dv.Value.Value if dv.Value is not None else None

    def _commands(self) -> None:
        """Act on what clients wrote since the last scan."""
        model, now = self.model, datetime.now().astimezone()
        batch = self._read("BatchNumber")
        if isinstance(batch, str) and batch != self._written.get("BatchNumber", batch):
            log.info("line PLC %r: batch number set to %r", self.config.id, batch)
            model.set_batch(batch)
        if self._read("Cmd_StartBatch") is True:
            number = str(self._read("Cmd_BatchNumber") or "")
            if number:
                product = str(self._read("Cmd_Product") or "") or None
                shift = str(self._read("Cmd_Shift") or "") or None
                log.info("line PLC %r: start batch %r", self.config.id, number)
                model.start_batch(number, product, shift, now)
            else:
                log.warning("line PLC %r: Cmd_StartBatch without Cmd_BatchNumber", self.config.id)
            self._written.pop("Cmd_StartBatch", None)  # write the reset below
        if self._read("Cmd_EndBatch") is True:
            log.info("line PLC %r: end batch", self.config.id)
            model.end_batch()
            self._written.pop("Cmd_EndBatch", None)

    def _values(self) -> dict[str, Any]:
        m = self.model
        return {
            "State": int(m.state),
            "StateName": m.state.label,
            "Mode": m.mode,
            "Speed": m.speed,
            "BagCount": m.bag_count,
            "CaseCount": m.case_count,
            "BagsPerCase": self.config.bags_per_case,
            "BatchNumber": m.batch,
            "Product": m.product,
            "Shift": m.shift,
            "FillWeight": m.fill_weight_g,
            "Iodine": m.iodine_mg_kg,
            "FeedMaterial": m.feed_material,
            "FeedLot": m.feed_lot,
            "FeedQtyKg": m.feed_qty_kg,
            "FeedPoint": m.feed_point,
            "FeedOperator": m.feed_operator,
            "FeedCount": m.feed_count,
            "Cmd_StartBatch": False,
            "Cmd_EndBatch": False,
        }

    async def _publish(self) -> None:
        """Write the model's values that changed into the address space."""
        server = self._server
        if server is None:
            return
        types = {name: vtype for name, vtype, _ in VARIABLES}
        for name, value in self._values().items():
            if self._written.get(name, _UNSET) == value:
                continue
            dv = ua.DataValue(ua.Variant(value, types[name]))
            await server.write_attribute_value(self._nodes[name], dv)
            self._written[name] = value


_UNSET = object()


def _arg(name: str, description: str, vtype: ua.VariantType = V.String) -> ua.Argument:
    return ua.Argument(
        Name=name,
        DataType=ua.NodeId(ua.Int32(vtype.value)),
        ValueRank=-1,
        Description=ua.LocalizedText(description),
    )


def _check_args(
    args: tuple[ua.Variant, ...], types: tuple[ua.VariantType, ...]
) -> ua.CallMethodResult | None:
    """The server does not check a call's inputs against the method's: the PLC program does."""
    if len(args) != len(types):
        code = (
            ua.StatusCodes.BadArgumentsMissing
            if len(args) < len(types)
            else ua.StatusCodes.BadTooManyArguments
        )
        return ua.CallMethodResult(StatusCode=ua.StatusCode(ua.UInt32(code)))
    results = [
        ua.StatusCode()
        if arg.VariantType == vtype
        else ua.StatusCode(ua.UInt32(ua.StatusCodes.BadTypeMismatch))
        for arg, vtype in zip(args, types, strict=True)
    ]
    if all(r.is_good() for r in results):
        return None
    return ua.CallMethodResult(
        StatusCode=ua.StatusCode(ua.UInt32(ua.StatusCodes.BadInvalidArgument)),
        InputArgumentResults=results,
    )


def _nid(name: str, index: int) -> ua.NodeId:
    return ua.NodeId(ua.String(name), ua.Int16(index))


def _initial(vtype: ua.VariantType) -> Any:
    if vtype == V.String:
        return ""
    if vtype == V.Boolean:
        return False
    if vtype == V.Double:
        return 0.0
    return 0
