"""Hooks for the schemathesis run in .ci/contract.

Idempotency-Key: the server answers a key reused with a different request with 422
`idempotency_key_reused`, by design (a retry must be the same request). Generated
requests reuse the few valid key values the generator picks across different bodies
and operations, so every request that sends a valid key gets one of its own. Invalid
keys are left as generated: the server must refuse them.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"[!-~]{1,255}")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and VALID_KEY.fullmatch(key):
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
