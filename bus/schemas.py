"""JSON Schemas of the MQTT payloads, generated from the pydantic models (never edited by hand).

``python -m bus.schemas docs/schemas`` rewrites ``docs/schemas/*.schema.json``; a test
checks that the committed files are what the models generate, so the docs cannot drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bus.messages import KIND_OF
from bus.topics import ROOT

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _type_name(model: type[BaseModel]) -> str:
    """The message's ``type`` value (``cue``, ``rep``, …), which also names its schema file."""
    name = model.model_fields["type"].default
    assert isinstance(name, str)
    return name


def schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema (draft 2020-12) per message type, keyed by the type's name."""
    out: dict[str, dict[str, Any]] = {}
    for model, kind in KIND_OF.items():
        name = _type_name(model)
        # What goes on the wire: the publisher sends every field (null when unknown), so the
        # fields with a default (schema_version, type) are required too; only the fields added
        # within v1 may be absent, from the messages of older publishers.
        schema = model.model_json_schema(mode="serialization")
        added: frozenset[str] = getattr(model, "added_in_v1", frozenset())
        schema["required"] = sorted(set(schema["properties"]) - added)
        schema["$schema"] = DIALECT
        # A URN, not a URL: the schemas are not served anywhere, yet "$id" must be a URI.
        schema["$id"] = f"urn:{ROOT.replace('/', ':')}:{name}"
        schema["title"] = f"Stridecue {name} message ({ROOT}/athletes/{{athlete_id}}/{kind})"
        out[name] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    """Deterministic text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(directory: Path | str) -> list[Path]:
    """Write ``{type}.schema.json`` for every message type into ``directory``; the paths written."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = folder / f"{name}.schema.json"
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bus.schemas DIRECTORY", file=sys.stderr)
        return 2
    for path in write_schemas(argv[0]):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
