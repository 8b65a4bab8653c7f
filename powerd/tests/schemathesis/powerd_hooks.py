"""Schemathesis checks for powerd (loaded with SCHEMATHESIS_HOOKS=powerd_hooks).

`auth_is_enforced`: every /v1 response to a request (with a method the spec lists) without the valid token is a 401, except
reads when powerd runs with open reads; a request with the valid token is never a 401.
The valid token and the open-reads setting come from the environment the test sets.
"""

import base64
import os

import schemathesis

TOKEN = os.environ.get("POWERD_TEST_TOKEN", "")
OPEN_READS = os.environ.get("POWERD_TEST_OPEN_READS") == "1"


def presents_the_token(authorization):
    if not authorization or not TOKEN:
        return False
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return rest.strip() == TOKEN
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(rest.strip(), validate=True).decode()
        except ValueError:
            return False
        return decoded.partition(":")[2] == TOKEN
    return False


@schemathesis.check
def auth_is_enforced(ctx, response, case):
    method = case.method.upper()
    if method != case.operation.method.upper():
        return  # a method the operation does not have: `unsupported_method` checks the 405
    authorization = response.request.headers.get("Authorization")
    valid = presents_the_token(authorization)
    open_read = OPEN_READS and method == "GET" and authorization is None
    status = response.status_code
    if valid and status == 401:
        raise AssertionError(f"{method} {case.path}: the valid token was refused (401)")
    if not valid and not open_read and status != 401:
        what = "no token" if authorization is None else "an invalid token"
        raise AssertionError(f"{method} {case.path} with {what} answered {status}, not 401")
