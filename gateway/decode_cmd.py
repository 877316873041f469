"""``saltgw decode IMAGE... [--json]``: decode image files exactly as the camera driver does
(drivers/camera/decoder.py) and check each code (gateway/codes), for commissioning cameras.

Output (contract, ../shared/design/contract.md): one line per code, ``FILE: CODE (valid)``,
``FILE: CODE (invalid: reason)``, or ``FILE: no code``; with ``--json`` one object per line with
``file``, ``raw`` (the decoded text), ``code``, ``valid``, ``reason``, and ``decoder``: "zbar" or
"opencv", the decoder that read the code (with no code: the engine that looked, "opencv" where
ZBar is not installed; drivers/camera/decoder.py). A file that cannot be read is reported on
stderr, and so is one over the camera's size limits (``max_image_bytes``, ``max_image_pixels``
of ``--config``'s first camera, else their defaults; drivers/camera/limits.py), which is refused
before it is decoded. Exit status: 0 when every file holds only valid codes, 1 when a file has
no code or an invalid one, 2 when a file could not be read.

Which enterprise the codes must carry: ``--enterprise``, else ``gateway.enterprise`` of
``--config`` (whose first scanner profile's ``codes:`` rules apply too), else any enterprise of
QB/T 5279 Annex A.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from gateway.codes import TraceCodeRules, check_code

if TYPE_CHECKING:
    from drivers.camera.limits import ImageLimits

__all__ = ["decode_files", "limits_from_config", "rules_from_config"]


def limits_from_config(config: Any) -> ImageLimits:
    """The image size limits of a loaded config's first camera (the defaults without one)."""
    for device in config.devices:
        limits = getattr(device, "image_limits", None)
        if callable(limits):
            return cast("ImageLimits", limits())
    return ImageLimits()


def rules_from_config(config: Any) -> tuple[TraceCodeRules, str | None]:
    """The code rules of a loaded config's first profile that has them, and its enterprise."""
    for prof in config.profiles:
        rules = getattr(prof, "codes", None)
        if isinstance(rules, TraceCodeRules):
            return rules, config.gateway.enterprise
    return TraceCodeRules(), config.gateway.enterprise


def decode_files(
    files: list[Path],
    *,
    as_json: bool,
    rules: TraceCodeRules,
    enterprise: str | None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    limits: ImageLimits | None = None,
) -> int:
    from drivers.camera.decoder import QrDecoder, load_image
    from drivers.camera.limits import ImageRefused

    if enterprise is None:  # no line to compare with: any producer of Annex A
        rules = rules.model_copy(update={"own_enterprise_only": False})
    decoder = QrDecoder()
    status = 0
    for path in files:
        try:
            image = load_image(path, limits) if path.is_file() else None
        except ImageRefused as exc:  # checked before decoding, as the camera driver does
            print(f"{path}: error: cannot read image ({exc})", file=err)
            status = 2
            continue
        except OSError as exc:
            print(f"{path}: error: cannot read image ({exc.strerror})", file=err)
            status = 2
            continue
        if image is None:
            why = "no such file" if not path.exists() else "not an image OpenCV can read"
            print(f"{path}: error: cannot read image ({why})", file=err)
            status = 2
            continue
        result = decoder.decode(image)
        texts = result.texts
        if not texts:
            status = max(status, 1)
            if as_json:
                row = {
                    "file": str(path),
                    "raw": None,
                    "code": None,
                    "valid": False,
                    "reason": "no code",
                    "decoder": decoder.engine,
                }
                print(json.dumps(row, ensure_ascii=False), file=out)
            else:
                print(f"{path}: no code", file=out)
            continue
        for raw in texts:
            check = check_code(raw, rules, enterprise or "")
            if not check.valid:
                status = max(status, 1)
            if as_json:
                row = {
                    "file": str(path),
                    "raw": raw,
                    "code": check.code,
                    "valid": check.valid,
                    "reason": check.reason,
                    "decoder": result.decoder,
                }
                print(json.dumps(row, ensure_ascii=False), file=out)
            else:
                shown = check.code or raw
                verdict = "valid" if check.valid else f"invalid: {check.reason}"
                print(f"{path}: {shown} ({verdict})", file=out)
    return status
