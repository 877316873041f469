"""asyncua's exceptions → the driver seam's DeviceOffline / DeviceFault, with messages that say
what happened and, for security refusals, what to fix.

    OSError, ConnectionError, TimeoutError                      -> DeviceOffline
    status codes of a lost link or session (BadTimeout,
      BadConnectionClosed, BadSessionIdInvalid, BadServerHalted…) -> DeviceOffline
    certificate / identity refusals (BadCertificateUntrusted,
      BadSecurityChecksFailed, BadIdentityTokenRejected…)       -> DeviceFault, with a hint
    any other status code or protocol error                     -> DeviceFault
"""

from __future__ import annotations

from asyncua import ua

from drivers.base import DeviceError, DeviceFault, DeviceOffline
from drivers.opcua.resolve import status_text

__all__ = ["LINK_LOST", "NODE_GONE", "device_error"]

_S = ua.StatusCodes

#: Status codes that mean the link or the session is gone: reconnecting is the cure.
LINK_LOST = frozenset(
    {
        _S.BadTimeout,
        _S.BadRequestTimeout,
        _S.BadCommunicationError,
        _S.BadConnectionClosed,
        _S.BadConnectionRejected,
        _S.BadNotConnected,
        _S.BadServerNotConnected,
        _S.BadSecureChannelClosed,
        _S.BadSecureChannelIdInvalid,
        _S.BadSessionIdInvalid,
        _S.BadSessionClosed,
        _S.BadSessionNotActivated,
        _S.BadServerHalted,
        _S.BadShutdown,
        _S.BadTcpServerTooBusy,
        _S.BadTcpInternalError,
        _S.BadTooManySessions,
        _S.BadNoSubscription,
        _S.BadSubscriptionIdInvalid,
    }
)

#: A node that was resolved is gone: the address space changed, resolve again.
NODE_GONE = frozenset({_S.BadNodeIdUnknown, _S.BadNodeIdInvalid})

_CERTIFICATE = frozenset(
    {
        _S.BadCertificateUntrusted,
        _S.BadCertificateInvalid,
        _S.BadSecurityChecksFailed,
        _S.BadCertificateUriInvalid,
        _S.BadCertificateTimeInvalid,
        _S.BadCertificateRevoked,
        _S.BadApplicationSignatureInvalid,
    }
)
_IDENTITY = frozenset(
    {_S.BadIdentityTokenRejected, _S.BadIdentityTokenInvalid, _S.BadUserAccessDenied}
)
_POLICY = frozenset({_S.BadSecurityPolicyRejected, _S.BadSecurityModeRejected})


def device_error(exc: BaseException, doing: str, *, client_cert: str | None = None) -> Exception:
    """The DeviceError for ``exc`` raised while ``doing`` (e.g. "connecting to opc.tcp://…");
    an exception that is none of asyncua's or the OS's is returned unchanged (a driver bug)."""
    if isinstance(exc, DeviceError):
        return exc
    if isinstance(exc, ua.UaStatusCodeError):
        code = exc.code
        text = f"{doing}: {status_text(code)}"
        if code in LINK_LOST:
            return DeviceOffline(text)
        if code in _CERTIFICATE:
            what = f" ({client_cert})" if client_cert else ""
            return DeviceFault(
                f"{text}: the server does not accept our client certificate{what}; add it to "
                "the PLC's trusted certificates"
            )
        if code in _IDENTITY:
            return DeviceFault(f"{text}: the server refused our user identity (check identity)")
        if code in _POLICY:
            return DeviceFault(f"{text}: the server refused our security policy or mode")
        return DeviceFault(text)
    if isinstance(exc, ConnectionRefusedError):
        return DeviceOffline(f"{doing}: connection refused")
    if isinstance(exc, TimeoutError):
        return DeviceOffline(f"{doing}: no answer in time")
    if isinstance(exc, OSError):  # ConnectionError included
        return DeviceOffline(f"{doing}: {exc.strerror or exc or type(exc).__name__}")
    if isinstance(exc, ua.UaError):
        return DeviceFault(f"{doing}: {exc}")
    return exc if isinstance(exc, Exception) else DeviceFault(f"{doing}: {exc!r}")
