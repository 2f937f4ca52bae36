"""What the Python client answers for the sources on stdin, as JSON on stdout (for the Node suite).

Usage: python python_answers.py ADDRESS < cases.json

Each case is {"source": <the reference's to_dict() shape>, "redact": bool, "entry": optional
{"session_key", "session_id", "created_at", "updated_at"} with ISO times, "platforms": optional
RuntimePlatforms with the contract's field names}. For each, the answer
holds BuildSessionKey's three fields and BuildSessionContext's prompt and context, asked through
``sessiond_client.connect(address)``.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.timestamp_pb2 import Timestamp

from sessiond_client import connect
from sessiond_client.store_client import source_to_proto
from sessiond_client.v1.session_pb2 import SessionEntry
from sessiond_client.v1.session_store_pb2 import RuntimePlatforms


def _timestamp(text: str) -> Timestamp:
    timestamp = Timestamp()
    timestamp.FromDatetime(datetime.fromisoformat(text.replace("Z", "+00:00")))
    return timestamp


def _entry(entry: dict[str, str] | None) -> SessionEntry | None:
    if not entry:
        return None
    return SessionEntry(
        session_key=entry["session_key"],
        session_id=entry["session_id"],
        created_at=_timestamp(entry["created_at"]),
        updated_at=_timestamp(entry["updated_at"]),
    )


def main() -> int:
    address = sys.argv[1]
    cases = json.load(sys.stdin)
    answers: list[dict[str, Any]] = []
    with connect(address) as client:
        for case in cases:
            source = source_to_proto(case["source"])
            key = client.build_session_key(source)
            platforms = ParseDict(case["platforms"], RuntimePlatforms()) if case.get("platforms") else None
            context = client.build_session_context(
                source, entry=_entry(case.get("entry")), redact_pii=bool(case.get("redact")), platforms=platforms
            )
            answers.append(
                {
                    "session_key": key.session_key,
                    "shared_multi_user_session": key.shared_multi_user_session,
                    "description": key.description,
                    "prompt": context.prompt,
                    "context": MessageToDict(context.context, preserving_proto_field_name=True),
                }
            )
    json.dump(answers, sys.stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
