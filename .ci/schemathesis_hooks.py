"""Hooks for the schemathesis run in .ci/contract.

Idempotency-Key: the server answers a key reused with a different request with 422
`idempotency_key_reused`, by design (a retry must be the same request). Generated
requests would otherwise reuse the few key values the schema allows across different
bodies, so every request gets a key of its own.
"""

import uuid

import schemathesis


@schemathesis.hook
def map_headers(ctx, headers):
    if headers and "Idempotency-Key" in headers:
        headers["Idempotency-Key"] = uuid.uuid4().hex
    return headers
