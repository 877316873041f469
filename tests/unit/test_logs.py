import json
import logging

from gateway.logs import JsonFormatter, RateLimit


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("gateway.x", logging.WARNING, __file__, 1, msg, args, None)


def test_repeats_are_rate_limited_and_the_suppressed_count_reported() -> None:
    f = RateLimit(burst=3, window_secs=0.2)
    passed = [f.filter(record("device %s offline", "cw1")) for _ in range(10)]
    assert passed == [True] * 3 + [False] * 7
    assert f.filter(record("another message"))
    assert f.filter(record("device %s offline", "md1"))  # another device is not suppressed
    import time

    time.sleep(0.25)
    r = record("device %s offline", "cw1")
    assert f.filter(r)
    assert "[7 similar lines suppressed]" in r.getMessage()


def test_state_changes_are_never_rate_limited() -> None:
    f = RateLimit(burst=2, window_secs=60)
    msgs = []
    for _ in range(12):  # a broker restarting again and again: every connect is news
        r = record("connected to MQTT broker %s", "127.0.0.1:1883")
        r.state_change = True
        msgs.append(f.filter(r))
    assert msgs == [True] * 12
    plain = [f.filter(record("connected to MQTT broker %s", "127.0.0.1:1883")) for _ in range(4)]
    assert plain == [True, True, False, False]


def test_json_lines_carry_the_formatted_message() -> None:
    line = JsonFormatter().format(record("weighing %d: %r", 5, "NaN"))
    obj = json.loads(line)
    assert obj["msg"] == "weighing 5: 'NaN'"
    assert obj["level"] == "warning"
    assert obj["logger"] == "gateway.x"
    assert obj["ts"].endswith("+00:00")
