"""The shared RTU bus hands the line on round-robin between devices (drivers/modbus/bus.py):
a device with several requests waiting gets one turn per round, so it cannot starve others."""

from __future__ import annotations

import asyncio

from drivers.modbus.bus import _Turns


async def _served(requests: list[str]) -> list[str]:
    turns = _Turns()
    order: list[str] = []
    await turns.acquire("holder")  # the line is busy while everyone queues

    async def one(key: str) -> None:
        await turns.acquire(key)
        order.append(key)
        await asyncio.sleep(0)
        turns.release()

    tasks = [asyncio.create_task(one(k)) for k in requests]
    await asyncio.sleep(0)  # all queued, in this order
    turns.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    return order


def test_round_robin_between_devices_not_first_come() -> None:
    order = asyncio.run(_served(["a", "a", "a", "b", "c", "a", "b"]))
    assert order == ["a", "b", "c", "a", "b", "a", "a"]


def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    async def run() -> list[str]:
        turns = _Turns()
        order: list[str] = []
        await turns.acquire("x")
        waiting = asyncio.create_task(turns.acquire("dead"))

        async def live() -> None:
            await turns.acquire("live")
            order.append("live")
            turns.release()

        task = asyncio.create_task(live())
        await asyncio.sleep(0)
        waiting.cancel()
        turns.release()
        await asyncio.wait_for(task, 5)
        await turns.acquire("after")  # the lock is free again
        order.append("after")
        return order

    assert asyncio.run(run()) == ["live", "after"]
