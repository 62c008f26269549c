"""A deletion request that can never be carried out is rejected at once, with the reason.

Everything else about a request is worth retrying; an empty or malformed subject is not, and retrying
it would hold up every request behind it in the deletion lane.
"""

from __future__ import annotations

import re
from typing import Any

from streams.errors import InvalidRequest

SUBJECT_KINDS = frozenset({"email", "contact_id", "user_id"})
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def validate_deletion_request(request: dict[str, Any]) -> None:
    subject = (request.get("subject") or "").strip()
    kind = request.get("subject_kind") or ""
    if not (request.get("request_id") or "").strip():
        raise InvalidRequest("the deletion request has no request_id")
    if not subject:
        raise InvalidRequest("the deletion request names no subject")
    if kind not in SUBJECT_KINDS:
        raise InvalidRequest(f"unknown subject kind {kind!r} (expected one of {', '.join(sorted(SUBJECT_KINDS))})")
    if kind == "email" and not EMAIL.fullmatch(subject):
        raise InvalidRequest(f"subject {subject!r} is not an email address")
    if kind in {"contact_id", "user_id"} and not subject.isdigit():
        raise InvalidRequest(f"subject {subject!r} is not a numeric {kind}")
