"""Schemathesis hooks for the Avi front-end (loaded with SCHEMATHESIS_HOOKS=schemathesis_avi_hooks).

The Avi API authenticates with a cookie session and, on unsafe methods, the session's CSRF token in
`X-CSRFToken` (plus the `csrftoken` cookie and a `Referer` naming the server, as avisdk sends them),
which the CLI's -H cannot do. This auth provider logs in once (POST /login, form-encoded, as avisdk)
and puts the session on every generated request. `/logout` gets a session of its own each time, so the
run's session is never ended by the fuzzer; `/login` gets no session, and every other schema-valid
(positive) login case gets the real credentials, so successful logins are checked against the document too.

Configuration (environment): AVI_BASE_URL (http://127.0.0.1:PORT), AVI_USERNAME, AVI_PASSWORD.
"""

import os

import requests
import schemathesis


def _login() -> dict:
    base = os.environ["AVI_BASE_URL"].rstrip("/")
    r = requests.post(base + "/login", data={"username": os.environ["AVI_USERNAME"], "password": os.environ["AVI_PASSWORD"]},
                      timeout=60)
    r.raise_for_status()
    return {"base": base, "sessionid": r.cookies["sessionid"], "csrftoken": r.cookies["csrftoken"]}


def _apply(case, session: dict) -> None:
    case.cookies = {**(case.cookies or {}), "sessionid": session["sessionid"], "csrftoken": session["csrftoken"]}
    headers = dict(case.headers or {})
    headers["X-CSRFToken"] = session["csrftoken"]
    headers["Referer"] = session["base"] + "/"
    case.headers = headers


_logins = 0


# retry_on=[]: a 401 is an answer to check (no session, CSRF), not a cue to log in again and retry.
@schemathesis.auth(refresh_interval=3600, retry_on=[])
class AviSession:
    def get(self, case, context):
        return _login()

    def set(self, case, data, context):
        path = case.operation.path
        if path == "/login":
            global _logins
            meta = case.meta
            if meta is not None and meta.generation.mode.is_positive and isinstance(case.body, dict):
                _logins += 1
                if _logins % 2:
                    case.body = {**case.body, "username": os.environ["AVI_USERNAME"], "password": os.environ["AVI_PASSWORD"]}
            return
        _apply(case, _login() if path == "/logout" else data)
