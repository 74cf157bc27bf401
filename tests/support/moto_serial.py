"""moto server that handles one request at a time, with injectable faults, seeded chaos and holds.

moto's DynamoDB evaluates a ConditionExpression and applies the update without a lock, so two
concurrent conditional writes to one item can both succeed (about 1 in 100 four-way races on
moto 5.2.5). Real DynamoDB makes each conditional write atomic; the sweeper's concurrency test
relies on exactly that, so it runs against this wrapper: same moto, same CLI
(`moto_serial.py -H HOST -p PORT`), requests serialized by one lock. Standard library only.

Faults: `POST /_arc/faults` with a JSON object arms one (`GET /_arc/faults` lists them with the
count each has left); the next `count` requests that match
it are answered with its `status`, `body` and `content_type` instead of reaching moto (what
AWS answers for a throttled request, a cancelled transaction, an S3 500). A fault matches on
all of the fields it gives: `target` (the X-Amz-Target, e.g.
`DynamoDB_20120810.TransactWriteItems`), `method`, `path_contains` (a string, or a list of strings all in the path), `body_contains` (e.g. a
table name, so that tests running side by side never see each other's faults).

Chaos (the fault-injecting proxy of the reliability suite, RELIABILITY.md):
`POST /_arc/chaos {"seed": N, "rate": 0.2, "kinds": [...], "latency_ms": 5, "match": {...}}`
turns it on (again: new seed, counters reset: `seen`, `operations` — requests selected by
operation name —, `forwarded`, `injected`); `POST /_arc/chaos {"off": true}` (or DELETE)
turns it off; `{"pause": true}` / `{"resume": true}` stop and restart it where it was (same
random stream, counters kept: a test reads the tables in between); `GET /_arc/chaos` reads it: `{"on", "seen", "forwarded", "injected": {kind: n}}`;
with `"trace": true`, `GET /_arc/chaos/trace` lists each injection (kind, operation, request).
Every request the `match` selects waits `latency_ms` (outside the lock, as network latency
would: a benchmark can use chaos with `rate` 0 for latency alone), then with probability
`rate` gets one of `kinds`, drawn from a `random.Random(seed)`, in arrival order:

  drop        the connection is closed without an answer; the request never reaches moto
  lost        the request is applied by moto, then the connection is closed without the answer
              (what makes a naive retry of a non-idempotent write count twice)
  500, 503    HTTP 500 InternalServerError / 503 ServiceUnavailable
  throttle    ThrottlingException (DynamoDB, Step Functions: 400 JSON; S3: 503 SlowDown)
  throughput  ProvisionedThroughputExceededException (DynamoDB; elsewhere as throttle)
  conflict    TransactionConflictException on a DynamoDB write (a TransactWriteItems gets
              TransactionCanceledException with reason TransactionConflict); a read or another
              service gets 500 instead: DynamoDB never answers a read with a conflict

Holds (kill points): `POST /_arc/holds {"id": "k", "nth": 3, "when": "before"|"after",
"match": {...}}` holds the `nth` request that `match` selects: `before` it reaches moto, or
`after` moto applied it, before the answer goes out. The request waits (outside the lock)
until `POST /_arc/holds/release {"id": "k", "then": "drop"|"pass"}`: `drop` closes the
connection unanswered (and, held before, never applies it), `pass` lets it go on. `GET
/_arc/holds` lists each hold with `seen` (matching requests so far), `held`, `released` and
the `operation` held. A test SIGKILLs a process while its request is held, then releases it.

A `match` selects a request when every field it gives agrees: `services` (the SigV4 scope:
`dynamodb`, `states`, `s3`, `monitoring`), `operations` (`UpdateItem`, `StartExecution`,
`PutObject`-style names for JSON services; `S3:GET`/`S3:PUT`… for S3), `exclude_operations`,
`contains` (any of the strings in the path or body, e.g. this test's table and bucket
names), `all_contains`, `exclude_contains` (none of them). An empty match selects everything.
"""

import io
import json
import random
import re
import socket
import sys
import threading
import time

from moto import server
from moto.server import DomainDispatcherApplication

_lock = threading.Lock()
_ctl = threading.Lock()  # chaos and holds bookkeeping (never held while a request waits)
_dispatch = DomainDispatcherApplication.__call__
_faults = []
_chaos = {"on": False}
_holds = []

CHAOS_KINDS = ("drop", "lost", "500", "503", "throttle", "throughput", "conflict")
DYNAMODB_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems")
HOLD_LIMIT_SECONDS = 300


class _Dropped(ConnectionAbortedError):
    """Raised to make werkzeug end the request without writing an answer."""


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


def _service(environ):
    m = re.search(r"Credential=[^/]*/[^/]*/[^/]*/([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
    return m.group(1) if m else ""


def _operation(environ, body):
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target.rsplit(".", 1)[-1]
    path = environ.get("PATH_INFO", "")
    if "/operation/" in path:
        return path.rsplit("/", 1)[-1]
    m = re.search(rb"(?:^|&)Action=([A-Za-z]+)", body)
    if m:
        return m.group(1).decode()
    return "S3:" + environ.get("REQUEST_METHOD", "")


def _selects(match, req):
    if not match:
        return True
    text = req["text"]
    if "services" in match and req["service"] not in match["services"]:
        return False
    if "operations" in match and req["operation"] not in match["operations"]:
        return False
    if req["operation"] in match.get("exclude_operations", []):
        return False
    if "contains" in match and not any(s in text for s in match["contains"]):
        return False
    if not all(s in text for s in match.get("all_contains", [])):
        return False
    if any(s in text for s in match.get("exclude_contains", [])):
        return False
    return True


def _answer(start_response, status, payload, content_type):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(payload)))])
    return [payload]


def _json(start_response, status, obj):
    return _answer(start_response, status, json.dumps(obj).encode(), "application/json")


def _drop(environ):
    """Closes the client's connection without an answer (the client sees EOF mid-request)."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    raise _Dropped("dropped by chaos")


def _error(kind, req, start_response):
    """The canned answer of an error kind, in the protocol of the request's service."""
    op, service = req["operation"], req["service"]
    ddb = "com.amazonaws.dynamodb.v20120810#"
    if kind == "conflict" and service == "dynamodb" and op in DYNAMODB_WRITES:
        if op == "TransactWriteItems":
            try:
                n = len(json.loads(req["body"] or b"{}").get("TransactItems", [])) or 1
            except ValueError:
                n = 1
            reasons = [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}]
            reasons += [{"Code": "None"}] * (n - 1)
            body = {
                "__type": ddb + "TransactionCanceledException",
                "message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
                + "[" + ", ".join(r["Code"] for r in reasons) + "]",
                "CancellationReasons": reasons,
            }
        else:
            body = {
                "__type": ddb + "TransactionConflictException",
                "message": "Transaction is ongoing for the item",
            }
        return _answer(start_response, "400 Bad Request", json.dumps(body).encode(), "application/x-amz-json-1.0")
    if kind == "conflict":
        kind = "500"
    if kind == "throughput" and service != "dynamodb":
        kind = "throttle"
    if kind in ("throttle", "throughput") and service in ("dynamodb", "states"):
        name = "ThrottlingException" if kind == "throttle" else "ProvisionedThroughputExceededException"
        prefix = ddb if service == "dynamodb" else ""
        body = {"__type": prefix + name, "message": "Rate of requests exceeds the allowed throughput."}
        return _answer(start_response, "400 Bad Request", json.dumps(body).encode(), "application/x-amz-json-1.0")
    if kind in ("throttle", "throughput"):
        if service == "s3":
            xml = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            return _answer(start_response, "503 Slow Down", xml, "application/xml")
        kind = "503"
    if service == "s3":
        code = b"InternalError" if kind == "500" else b"ServiceUnavailable"
        xml = b"<Error><Code>" + code + b"</Code><Message>injected</Message></Error>"
        status = "500 Internal Server Error" if kind == "500" else "503 Service Unavailable"
        return _answer(start_response, status, xml, "application/xml")
    if kind == "500":
        body = {"__type": (ddb if service == "dynamodb" else "") + "InternalServerError", "message": "injected"}
        return _answer(start_response, "500 Internal Server Error", json.dumps(body).encode(), "application/x-amz-json-1.0")
    body = {"__type": (ddb if service == "dynamodb" else "") + "ServiceUnavailable", "message": "injected"}
    return _answer(start_response, "503 Service Unavailable", json.dumps(body).encode(), "application/x-amz-json-1.0")


def _read_json(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return json.loads(environ["wsgi.input"].read(length) or b"{}")


def _chaos_view():
    c = _chaos
    return {
        "on": c.get("on", False),
        "seed": c.get("seed"),
        "rate": c.get("rate", 0.0),
        "kinds": c.get("kinds", []),
        "latency_ms": c.get("latency_ms", 0),
        "match": c.get("match", {}),
        "seen": c.get("seen", 0),
        "operations": dict(c.get("operations", {})),
        "forwarded": c.get("forwarded", 0),
        "injected": dict(c.get("injected", {})),
    }


def _holds_view():
    return [{k: v for k, v in h.items() if k != "event"} for h in _holds]


def _control(self, environ, start_response):
    """The `/_arc/...` endpoints; `None` for any other path."""
    path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
    if path == "/_arc/faults" and method == "GET":
        with _lock:
            return _json(start_response, "200 OK", _faults)
    if path == "/_arc/faults" and method == "POST":
        fault = _read_json(environ)
        with _lock:
            _faults.append(fault)
        return _json(start_response, "200 OK", {})
    if path == "/_arc/chaos/trace" and method == "GET":
        with _ctl:
            return _json(start_response, "200 OK", _chaos.get("trace") or [])
    if path == "/_arc/chaos" and method == "GET":
        with _ctl:
            return _json(start_response, "200 OK", _chaos_view())
    if path == "/_arc/chaos" and method in ("POST", "DELETE"):
        spec = _read_json(environ) if method == "POST" else {"off": True}
        with _ctl:
            if spec.get("off") or spec.get("pause"):
                _chaos["on"] = False
                return _json(start_response, "200 OK", _chaos_view())
            if spec.get("resume"):
                _chaos["on"] = "rng" in _chaos
                return _json(start_response, "200 OK", _chaos_view())
            kinds = spec.get("kinds", list(CHAOS_KINDS))
            unknown = [k for k in kinds if k not in CHAOS_KINDS]
            rate = float(spec.get("rate", 0.0))
            if unknown or not 0.0 <= rate <= 1.0 or (rate > 0 and not kinds):
                return _json(start_response, "400 Bad Request", {"error": f"bad chaos spec: kinds {unknown}, rate {rate}"})
            _chaos.clear()
            _chaos.update(
                on=True,
                seed=spec.get("seed", 0),
                rate=rate,
                kinds=kinds,
                latency_ms=float(spec.get("latency_ms", 0)),
                match=spec.get("match", {}),
                rng=random.Random(spec.get("seed", 0)),
                seen=0,
                operations={},
                forwarded=0,
                injected={},
                trace=[] if spec.get("trace") else None,
            )
            return _json(start_response, "200 OK", _chaos_view())
    if path == "/_arc/holds" and method == "GET":
        with _ctl:
            return _json(start_response, "200 OK", _holds_view())
    if path == "/_arc/holds" and method == "POST":
        spec = _read_json(environ)
        if spec.get("when", "before") not in ("before", "after") or int(spec.get("nth", 1)) < 1:
            return _json(start_response, "400 Bad Request", {"error": "when must be before|after, nth >= 1"})
        with _ctl:
            _holds.append(
                {
                    "id": spec.get("id", str(len(_holds))),
                    "nth": int(spec.get("nth", 1)),
                    "when": spec.get("when", "before"),
                    "match": spec.get("match", {}),
                    "seen": 0,
                    "held": False,
                    "released": False,
                    "then": None,
                    "operation": None,
                    "event": threading.Event(),
                }
            )
            return _json(start_response, "200 OK", _holds_view()[-1])
    if path == "/_arc/holds/release" and method == "POST":
        spec = _read_json(environ)
        then = spec.get("then", "pass")
        if then not in ("drop", "pass"):
            return _json(start_response, "400 Bad Request", {"error": "then must be drop|pass"})
        with _ctl:
            found = [h for h in _holds if h["id"] == spec.get("id")]
            for h in found:
                h["released"], h["then"] = True, then
                h["event"].set()
            return _json(start_response, "200 OK", {"released": len(found)})
    return None


def _claim_hold(req, when):
    """The hold this request is the `nth` match of, if any (counts every hold it matches)."""
    mine = None
    with _ctl:
        for h in _holds:
            if h["when"] != when or h["released"] or not _selects(h["match"], req):
                continue
            h["seen"] += 1
            if h["seen"] == h["nth"] and mine is None:
                h["held"], h["operation"] = True, req["operation"]
                mine = h
    return mine


def _wait(hold):
    """Blocks until the hold is released; its verdict (`drop` when nobody released it)."""
    hold["event"].wait(HOLD_LIMIT_SECONDS)
    return hold["then"] or "drop"


def _chaos_draw(req):
    """`(latency seconds, kind or None)` for this request."""
    with _ctl:
        c = _chaos
        if not c.get("on") or not _selects(c["match"], req):
            return 0.0, None
        c["seen"] += 1
        c["operations"][req["operation"]] = c["operations"].get(req["operation"], 0) + 1
        kind = None
        if c["rate"] > 0 and c["rng"].random() < c["rate"]:
            kind = c["rng"].choice(c["kinds"])
            c["injected"][kind] = c["injected"].get(kind, 0) + 1
            if c["trace"] is not None:
                c["trace"].append({"n": c["seen"], "kind": kind, "operation": req["operation"], "request": req["text"][:400]})
        else:
            c["forwarded"] += 1
        return c["latency_ms"] / 1000.0, kind


def _serialized(self, environ, start_response):
    if environ.get("PATH_INFO", "").startswith("/_arc/"):
        answer = _control(self, environ, start_response)
        if answer is not None:
            return answer
    if environ.get("wsgi.input_terminated"):
        body = environ["wsgi.input"].read()  # chunked: read to its end
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ.pop("wsgi.input_terminated", None)
        environ["CONTENT_LENGTH"] = str(len(body))
    else:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    req = {"body": body, "service": _service(environ), "operation": _operation(environ, body)}
    req["text"] = environ.get("PATH_INFO", "") + " " + body.decode("utf-8", "replace")

    hold = _claim_hold(req, "before")
    if hold is not None and _wait(hold) == "drop":
        _drop(environ)
    latency, kind = _chaos_draw(req)
    if latency > 0:
        time.sleep(latency)
    if kind == "drop":
        _drop(environ)
    if kind is not None and kind != "lost":
        return _error(kind, req, start_response)

    captured = {}

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    with _lock:
        answer = None
        for fault in _faults:
            if _matches(fault, environ, body):
                fault["count"] -= 1
                payload = fault.get("body", "").encode()
                answer = (
                    f"{fault.get('status', 500)} Injected",
                    [
                        ("Content-Type", fault.get("content_type", "application/x-amz-json-1.0")),
                        ("Content-Length", str(len(payload))),
                    ],
                    [payload],
                )
                break
        if answer is None:
            # Materialize the body inside the lock: the whole request is one critical section.
            chunks = list(_dispatch(self, environ, capture))
            answer = (captured["status"], captured["headers"], chunks)

    if kind == "lost":
        _drop(environ)
    hold = _claim_hold(req, "after")
    if hold is not None and _wait(hold) == "drop":
        _drop(environ)
    start_response(answer[0], answer[1])
    return answer[2]


DomainDispatcherApplication.__call__ = _serialized

if __name__ == "__main__":
    server.main(sys.argv[1:])
