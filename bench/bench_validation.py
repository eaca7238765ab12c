"""Measure validation cost per event: the Marshmallow path against fastjsonschema, in one run.

    python bench/bench_validation.py [--out bench/results-validation.json] [--repeat 7]

Both sides start from the raw bytes (orjson.loads included). The reference validates against
the JSON Schema of the generated OpenAPI document, so it checks the same contract as strict
mode; its ``oneOf`` + ``discriminator`` pairs are rewritten as ``if``/``then`` chains, the form a
JSON Schema author would write for a tagged union (plain ``oneOf`` makes every alternative run).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import timeit
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from a source checkout

import fastjsonschema  # noqa: E402
import orjson  # noqa: E402

from workers.openapi import build_openapi  # noqa: E402
from workers.validation import parse_event  # noqa: E402

EXAMPLES = ("CREATE", "CREATE_REQUEST", "REQUEST_ALTERNATIVE_DATE")
PAYLOADS = ROOT / "tests" / "payloads"


def reference_schema(*, tagged: bool = True) -> dict[str, Any]:
    """The envelope's JSON Schema from the OpenAPI document, optionally with tagged unions."""
    components = build_openapi()["components"]
    if tagged:
        components = _tag_unions(components)
    return {"$ref": "#/components/schemas/Envelope", "components": components}


def _tag_unions(node: Any) -> Any:
    """Rewrite each ``oneOf`` with a ``discriminator`` as an ``if``/``then``/``else`` chain."""
    if isinstance(node, list):
        return [_tag_unions(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _tag_unions(value) for key, value in node.items()}
    discriminator = node.pop("discriminator", None)
    if discriminator is None:
        return node
    node.pop("oneOf")
    tag = discriminator["propertyName"]
    tags_by_ref: dict[str, list[str]] = {}
    for value, ref in discriminator["mapping"].items():
        tags_by_ref.setdefault(ref, []).append(value)
    chain: dict[str, Any] = {"required": [tag], "properties": {tag: {"enum": []}}}  # no variant
    for ref, values in reversed(tags_by_ref.items()):
        condition = {"required": [tag], "properties": {tag: {"enum": values}}}
        chain = {"if": condition, "then": {"$ref": ref}, "else": chain}
    return {**node, **chain}


def per_event_us(func, repeat: int) -> float:
    """Best-of-``repeat`` microseconds per call (the minimum is the least noisy estimate)."""
    timer = timeit.Timer(func)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def measure(repeat: int) -> list[dict[str, Any]]:
    """Time each example with every validator, after checking that all of them accept it."""
    tagged = fastjsonschema.compile(reference_schema(tagged=True))
    plain = fastjsonschema.compile(reference_schema(tagged=False))
    rows = []
    for name in EXAMPLES:
        body = (PAYLOADS / f"{name}.json").read_bytes()
        rows.append({"event": name, "bytes": len(body), **time_event(body, tagged, plain, repeat)})
    return rows


def time_event(body: bytes, tagged, plain, repeat: int) -> dict[str, float]:
    """The four timings of one body, and the Marshmallow/reference ratio."""
    for validate in (tagged, plain):
        validate(orjson.loads(body))  # raises if the reference disagrees with the example
    timings = {
        "marshmallow_tolerant_us": per_event_us(lambda: parse_event(body), repeat),
        "marshmallow_strict_us": per_event_us(lambda: parse_event(body, mode="strict"), repeat),
        "fastjsonschema_us": per_event_us(lambda: tagged(orjson.loads(body)), repeat),
        "fastjsonschema_plain_oneof_us": per_event_us(lambda: plain(orjson.loads(body)), repeat),
    }
    timings["ratio"] = timings["marshmallow_tolerant_us"] / timings["fastjsonschema_us"]
    return timings


def markdown(rows: list[dict[str, Any]]) -> str:
    """A small table: one line per example, µs per event and the Marshmallow/reference ratio."""
    lines = [
        "| event | bytes | marshmallow tolerant µs | marshmallow strict µs "
        "| fastjsonschema µs | fastjsonschema plain oneOf µs | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['event']} | {row['bytes']} | {row['marshmallow_tolerant_us']:.0f} "
            f"| {row['marshmallow_strict_us']:.0f} | {row['fastjsonschema_us']:.0f} "
            f"| {row['fastjsonschema_plain_oneof_us']:.0f} | {row['ratio']:.1f}× |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, and write the JSON results when asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--repeat", type=int, default=7, help="timing repeats per cell")
    args = parser.parse_args(argv)
    rows = measure(args.repeat)
    print(markdown(rows))
    print("\nratio = marshmallow tolerant / fastjsonschema (tagged unions), same run, same bytes")
    if args.out:
        results = {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "fastjsonschema": fastjsonschema.VERSION,
            "rows": rows,
        }
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
