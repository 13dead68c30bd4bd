"""NDJSON for the API fuzzer: the imports take one JSON object per line and the coupon
export answers that way, a media type the fuzzer does not know. The document describes
each such body as an array of its lines' objects, so a generated array becomes one line
per element, and an answer's lines become an array to check against the schema."""

import json

import schemathesis

NDJSON = "application/x-ndjson"


@schemathesis.serializer(NDJSON)
def ndjson_serializer(ctx, value):
    # Anything but an array (negative cases) is sent as one line, as a client might.
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode("utf-8")


@schemathesis.deserializer(NDJSON)
def ndjson_deserializer(ctx, response):
    text = response.content.decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
