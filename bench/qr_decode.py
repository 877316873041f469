"""QR decode benchmark: decode rate and ms/frame of pyzbar alone, OpenCV alone (classic and
ArUco-based detectors) and saltgw's decoder (drivers/camera/decoder.py, with the camera
driver's default decode budget) with each engine — ``saltgw`` (the ZBar cascade) and
``saltgw_opencv`` (the OpenCV-only cascade used where ZBar is not installed) — on frame sets it
generates (firmware_sim/qrframes.py: OpenCV-drawn QR symbols on 1280×720 bag frames, distorted
with OpenCV). One JSON object per line:

    {"bench": "qr_decode", "set": ..., "decoder": ..., "frames": N, "decoded": k,
     "rate": k/N, "ms_per_frame": mean, "ms_p95": ..., "vs_pyzbar_time": ratio}

Frame sets (each frame drawn from its own seed, so every decoder sees the same frames):

    realistic   15–30° rotation, perspective, blur ≤ 1.5 px, ≤ 3 glare spots, noise,
                faded print, 4–8 px per module (random_distortion)
    rot15       as realistic but exactly 15° rotation
    hard        2.5–4 px per module, blur ≤ 2 px, up to 4 strong glare spots: beyond a well
                set-up line camera, to show where the decoders differ

    python bench/qr_decode.py [--frames N] [--quick] [--seed S] [--save DIR]

``--save DIR`` also writes the realistic frames as PNG (for ``saltgw decode``).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2
from pyzbar import pyzbar

from bench.report import row
from drivers.camera.config import CameraDeviceConfig
from drivers.camera.decoder import QrDecoder
from firmware_sim.codegen import CHARSET
from firmware_sim.qrframes import Distortion, make_frame, random_distortion

SETS: dict[str, Callable[[random.Random], Distortion]] = {
    "realistic": random_distortion,
    "hard": lambda rng: Distortion(
        angle_deg=rng.choice((-1, 1)) * rng.uniform(15, 30),
        tilt=rng.uniform(0.0, 0.2),
        blur_px=rng.uniform(0.3, 2.0),
        glare_spots=rng.randint(0, 4),
        noise=rng.uniform(3, 12),
        module_px=rng.uniform(2.5, 4.0),
        contrast=rng.uniform(0.5, 1.0),
    ),
}


def _rot15(rng: random.Random) -> Distortion:
    d = random_distortion(rng)
    return Distortion(15.0, d.tilt, d.blur_px, d.glare_spots, d.noise, d.module_px, d.contrast)


SETS["rot15"] = _rot15  # the condition: 1280×720 frames rotated 15°

_QR = [pyzbar.ZBarSymbol.QRCODE]
TARGET_RATE = 0.99  # issue 5: ≥ 99 % of realistic frames …
TARGET_TIME_VS_PYZBAR = 2.0  # … at ≤ 2× pyzbar's time
BUDGET_MS = CameraDeviceConfig.model_fields["decode_budget_ms"].default  # as the camera runs


def decoders() -> dict[str, Callable[[Any], list[str]]]:
    aruco = cv2.QRCodeDetectorAruco()
    classic = cv2.QRCodeDetector()
    saltgw = QrDecoder(engine="zbar")
    fallback = QrDecoder(engine="opencv")

    def zbar(gray: Any) -> list[str]:
        return [s.data.decode("utf-8", "replace") for s in pyzbar.decode(gray, symbols=_QR)]

    def opencv(det: Any) -> Callable[[Any], list[str]]:
        def run(gray: Any) -> list[str]:
            ok, texts, _, _ = det.detectAndDecodeMulti(gray)
            return [t for t in texts if t] if ok else []

        return run

    return {
        "pyzbar": zbar,
        "opencv": opencv(classic),
        "opencv_aruco": opencv(aruco),
        "saltgw": lambda gray: saltgw.decode(gray, BUDGET_MS).texts,
        "saltgw_opencv": lambda gray: fallback.decode(gray, BUDGET_MS).texts,
    }


def run_set(
    name: str, frames: int, seed: int, save: Path | None, only: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """One frame set through every decoder (or those in ``only``; pyzbar always, as the
    reference); one result per decoder."""
    decs = {k: v for k, v in decoders().items() if only is None or k in only or k == "pyzbar"}
    times: dict[str, list[float]] = {d: [] for d in decs}
    hits: dict[str, int] = dict.fromkeys(decs, 0)
    for i in range(frames):
        rng = random.Random(seed * 1_000_003 + i)
        code = "8035" + "".join(rng.choices(CHARSET, k=12))
        payload = f"https://trace.example.cn/q?c={code}"
        frame, _ = make_frame(payload, rng, SETS[name](rng))
        if save is not None and name == "realistic":
            save.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(save / f"frame-{i:04d}.png"), frame)
        for dname, dec in decs.items():
            t0 = time.perf_counter()
            texts = dec(frame)
            times[dname].append((time.perf_counter() - t0) * 1000)
            hits[dname] += payload in texts
    base = statistics.fmean(times["pyzbar"])
    out = []
    for dname in decs:
        ts = sorted(times[dname])
        mean = statistics.fmean(ts)
        out.append(
            {
                "bench": "qr_decode",
                "set": name,
                "decoder": dname,
                "frames": frames,
                "decoded": hits[dname],
                "rate": round(hits[dname] / frames, 4),
                "ms_per_frame": round(mean, 2),
                "ms_p95": round(ts[int(0.95 * (len(ts) - 1))], 2),
                "vs_pyzbar_time": round(mean / base, 2),
            }
        )
    return out


def rows(quick: bool, frames: int | None = None, seed: int = 1) -> list[dict[str, Any]]:
    """For bench/run.py: saltgw's decoder beside pyzbar on the realistic set — time per frame
    and share of frames decoded (issue 5's target: ≥ 99 % at ≤ 2× pyzbar's time) — with ZBar,
    and with OpenCV alone (the fallback where ZBar is not installed) on the same frames."""
    n = frames or (30 if quick else 300)
    cv2.setNumThreads(1)
    t0 = time.perf_counter()
    only = ["saltgw", "saltgw_opencv"]
    by = {r["decoder"]: r for r in run_set("realistic", n, seed, None, only=only)}
    secs = round(time.perf_counter() - t0, 1)
    zbar = by["pyzbar"]
    common = {"set": "realistic", "frames": n, "seed": seed, "budget_ms": BUDGET_MS,
              "opencv_threads": 1, "bench_seconds": secs}  # fmt: skip
    out = []
    for prefix, name, what in (
        ("qr_decode", "saltgw", "ZBar cascade"),
        ("qr_decode_opencv", "saltgw_opencv", "OpenCV-only cascade (no ZBar installed)"),
    ):
        ours = by[name]
        out.append(
            row(
                f"{prefix}_ms_per_frame",
                ours["ms_per_frame"],
                "ms/frame",
                zbar["ms_per_frame"],
                target=round(TARGET_TIME_VS_PYZBAR * zbar["ms_per_frame"], 2),
                higher_is_better=False,
                baseline_name="pyzbar alone, same frames",
                target_note=f"≤ {TARGET_TIME_VS_PYZBAR:g}× pyzbar's time",
                decoder=what,
                ms_p95=ours["ms_p95"],
                baseline_ms_p95=zbar["ms_p95"],
                **common,
            )
        )
        out.append(
            row(
                f"{prefix}_rate",
                ours["rate"],
                "decoded/frames",
                zbar["rate"],
                target=TARGET_RATE,
                baseline_name="pyzbar alone, same frames",
                decoder=what,
                decoded=ours["decoded"],
                baseline_decoded=zbar["decoded"],
                **common,
            )
        )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=300, help="frames per set (default 300)")
    p.add_argument("--quick", action="store_true", help="60 frames per set")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sets", default="realistic,rot15,hard", help="comma-separated sets")
    p.add_argument("--save", type=Path, help="write the realistic frames here as PNG")
    args = p.parse_args()
    frames = 60 if args.quick else args.frames
    cv2.setNumThreads(1)  # comparable per-frame times on a shared machine
    for name in args.sets.split(","):
        for result in run_set(name, frames, args.seed, args.save):
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
