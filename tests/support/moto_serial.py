"""moto server that handles one request at a time, with injectable faults.

moto's DynamoDB evaluates a ConditionExpression and applies the update without a lock, so two
concurrent conditional writes to one item can both succeed (about 1 in 100 four-way races on
moto 5.2.5). Real DynamoDB makes each conditional write atomic; the sweeper's concurrency test
relies on exactly that, so it runs against this wrapper: same moto, same CLI
(`moto_serial.py -H HOST -p PORT`), requests serialized by one lock.

Faults: `POST /_arc/faults` with a JSON object arms one (`GET /_arc/faults` lists them with the
count each has left); the next `count` requests that match
it are answered with its `status`, `body` and `content_type` instead of reaching moto (what
AWS answers for a throttled request, a cancelled transaction, an S3 500). A fault matches on
all of the fields it gives: `target` (the X-Amz-Target, e.g.
`DynamoDB_20120810.TransactWriteItems`), `method`, `path_contains` (a string, or a list of strings all in the path), `body_contains` (e.g. a
table name, so that tests running side by side never see each other's faults).
"""

import io
import json
import sys
import threading

from moto import server
from moto.server import DomainDispatcherApplication

_lock = threading.Lock()
_dispatch = DomainDispatcherApplication.__call__
_faults = []


def _matches(fault, environ, body):
    if fault.get("count", 0) <= 0:
        return False
    if "target" in fault and environ.get("HTTP_X_AMZ_TARGET", "") != fault["target"]:
        return False
    if "method" in fault and environ.get("REQUEST_METHOD", "") != fault["method"]:
        return False
    wanted = fault.get("path_contains", [])
    for part in [wanted] if isinstance(wanted, str) else wanted:
        if part not in environ.get("PATH_INFO", ""):
            return False
    if "body_contains" in fault and fault["body_contains"].encode() not in body:
        return False
    return True


def _serialized(self, environ, start_response):
    if environ.get("PATH_INFO") == "/_arc/faults" and environ.get("REQUEST_METHOD") == "GET":
        with _lock:
            payload = json.dumps(_faults).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
        return [payload]
    if environ.get("PATH_INFO") == "/_arc/faults" and environ.get("REQUEST_METHOD") == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        fault = json.loads(environ["wsgi.input"].read(length) or b"{}")
        with _lock:
            _faults.append(fault)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]
    with _lock:
        body = b""
        if any(f.get("count", 0) > 0 for f in _faults):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            for fault in _faults:
                if _matches(fault, environ, body):
                    fault["count"] -= 1
                    payload = fault.get("body", "").encode()
                    start_response(
                        f"{fault.get('status', 500)} Injected",
                        [
                            ("Content-Type", fault.get("content_type", "application/x-amz-json-1.0")),
                            ("Content-Length", str(len(payload))),
                        ],
                    )
                    return [payload]
        # Materialize the body inside the lock: the whole request is one critical section.
        return list(_dispatch(self, environ, start_response))


DomainDispatcherApplication.__call__ = _serialized

if __name__ == "__main__":
    server.main(sys.argv[1:])
