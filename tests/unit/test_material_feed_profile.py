from datetime import UTC, datetime, timedelta
from typing import Any

from drivers.base import Reading
from gateway.profiles.material_feed import MATERIAL_FEED, MaterialFeedProfileConfig

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
TAGS = {"feed_count", "feed_material", "feed_lot", "feed_qty_kg", "feed_point", "feed_operator"}


def profile(**kw: Any) -> Any:
    cfg = MaterialFeedProfileConfig.model_validate(
        {"profile": "material_feed", "device": "plc1", **kw}
    )
    return MATERIAL_FEED.create(cfg, MATERIAL_FEED.bind(cfg.tags, TAGS), UTC)


def r(i: int, **values: Any) -> Reading:
    return Reading("plc1", T0 + timedelta(seconds=i), values)


def test_a_feeding_is_recorded_with_values_from_earlier_readings() -> None:
    p = profile()
    assert p.on_reading(r(0, feed_count=3, feed_material="原盐", feed_qty_kg=800.0)) == []
    # subscriptions deliver only what changed: the details first, then the counter
    assert (
        p.on_reading(
            r(
                1,
                feed_material="碘酸钾 (KIO3)",
                feed_lot="KI-20261122-002",
                feed_qty_kg=0.8,
                feed_point="iodine-doser",
            )
        )
        == []
    )
    (ev,) = p.on_reading(r(2, feed_count=4, feed_operator="李娜"))
    assert ev.type == "feed.material"
    assert ev.device == "plc1"
    assert ev.data == {
        "material": "碘酸钾 (KIO3)",
        "lot": "KI-20261122-002",
        "quantity": 0.8,
        "unit": "kg",
        "point": "iodine-doser",
        "operator": "李娜",
        "count": 4,
    }
    assert p.on_reading(r(3, feed_count=4)) == []


def test_nothing_fed_since_power_on_is_no_record() -> None:
    p = profile()
    assert p.on_reading(r(0, feed_count=0)) == []
    assert p.on_reading(r(1, feed_count=0, feed_material="原盐")) == []


def test_a_feeding_without_material_or_with_absurd_quantity_is_a_device_alarm() -> None:
    p = profile(max_quantity=2000)
    p.on_reading(r(0, feed_count=1))
    (ev,) = p.on_reading(r(1, feed_count=2, feed_qty_kg=10.0))
    assert ev.type == "alarm.device" and ev.data["tag"] == "feed_material"
    (ev,) = p.on_reading(r(2, feed_count=3, feed_material="原盐", feed_qty_kg=float("nan")))
    assert ev.type == "alarm.device" and "outside" in ev.data["reason"]
    (ev,) = p.on_reading(r(3, feed_count=4, feed_qty_kg=5000.0))
    assert ev.type == "alarm.device" and ev.data["tag"] == "feed_qty_kg"


def test_roles_bind_to_other_tag_names() -> None:
    p = MATERIAL_FEED.create(
        MaterialFeedProfileConfig.model_validate(
            {"profile": "material_feed", "device": "plc1", "tags": {"count": "n"}}
        ),
        MATERIAL_FEED.bind({"count": "n"}, TAGS | {"n"}),
        UTC,
    )
    p.on_reading(r(0, n=1))
    (ev,) = p.on_reading(r(1, n=2, feed_material="原盐", feed_qty_kg=600.0))
    assert ev.data["count"] == 2
