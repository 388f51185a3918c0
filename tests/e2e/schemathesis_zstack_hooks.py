"""Schemathesis hooks for the ZStack front-end (loaded with SCHEMATHESIS_HOOKS=schemathesis_zstack_hooks).

The session itself goes in with the CLI's `-H 'Authorization: OAuth <session>'`. These hooks only make
cases reach further than random data can: a well-formed `X-Job-UUID` is made fresh, as the SDKs make one
per call (generated ones repeat, and a reused job uuid is refused before the API runs); in schema-valid
(positive) cases, every other LogInByAccount gets the real account name and SHA-512 password, and most
AddImage calls name a backup storage that exists (a random 32-hex uuid never does), so images really get
created and the other operations find some. Other parts of negative cases are left alone.

Configuration (environment): ZSTACK_USERNAME, ZSTACK_PASSWORD (plain; sent as its SHA-512 hex),
ZSTACK_BACKUP_STORAGE (a backup storage uuid).
"""

import hashlib
import itertools
import os
import re
import uuid

import schemathesis

_logins = itertools.count()
_adds = itertools.count()


def _positive(case) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


@schemathesis.hook
def map_case(context, case):
    operation_id = case.operation.definition.raw.get("operationId")
    job = (case.headers or {}).get("X-Job-UUID")
    if isinstance(job, str) and re.fullmatch(r"[0-9a-fA-F]{32}", job):
        case.headers = {**case.headers, "X-Job-UUID": uuid.uuid4().hex}
    if not _positive(case) or not isinstance(case.body, dict):
        return case
    if operation_id == "logInByAccount" and next(_logins) % 2 == 0:
        password = hashlib.sha512(os.environ["ZSTACK_PASSWORD"].encode()).hexdigest()
        case.body = {**case.body, "logInByAccount": {"accountName": os.environ["ZSTACK_USERNAME"], "password": password}}
    elif operation_id == "addImage" and isinstance(case.body.get("params"), dict) and next(_adds) % 3 != 2:
        case.body = {**case.body, "params": {**case.body["params"], "backupStorageUuids": [os.environ["ZSTACK_BACKUP_STORAGE"]]}}
    return case
