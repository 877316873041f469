"""``python -m gateway.event_schemas [--markdown]``: every event schema as one JSON document, or
the reference docs (docs/events.md); the same as ``saltgw schema --events [--markdown]``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from gateway.event_schemas.markdown import render_markdown
from gateway.event_schemas.registry import events_schema


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m gateway.event_schemas",
        description="Print the JSON Schema of every saltgw event, or its Markdown reference.",
    )
    p.add_argument("--markdown", action="store_true", help="docs/events.md instead")
    args = p.parse_args(argv)
    if args.markdown:
        sys.stdout.write(render_markdown())
    else:
        print(json.dumps(events_schema(), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
