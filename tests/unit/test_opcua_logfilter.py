"""drivers/opcua/logfilter.py: asyncua's records of a lost link are dropped (the supervisor
logs the state change once); any other publish-loop failure stays, as one line."""

from __future__ import annotations

import logging

import pytest
from asyncua import ua

from drivers.opcua.logfilter import SESSION_LOGGER, install


def _crash(exc: BaseException) -> None:
    try:
        raise exc
    except BaseException:
        logging.getLogger(SESSION_LOGGER).exception("Publish iteration crashed; retrying in 1s")


def test_lost_link_records_are_dropped_and_others_shortened(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install()
    install()  # idempotent
    assert len(logging.getLogger(SESSION_LOGGER).filters) == 1
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=SESSION_LOGGER)  # whatever an earlier test set
    _crash(ConnectionError("Connection is closed"))
    _crash(ua.UaStatusCodeError(ua.StatusCodes.BadShutdown))
    logging.getLogger(SESSION_LOGGER).warning("close_session was called but connection is closed")
    assert caplog.records == []
    _crash(KeyError("surprise"))
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == (
        "OPC UA publish loop failed: KeyError('surprise'); asyncua retries in 1 s"
    )
    assert "Traceback" not in caplog.text
    logging.getLogger(SESSION_LOGGER).info("something else")
    assert caplog.records[-1].getMessage() == "something else"
