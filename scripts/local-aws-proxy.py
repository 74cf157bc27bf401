#!/usr/bin/env python3
"""A pass-through proxy in front of the local moto server, for `terraform apply`.

hashicorp/aws >= 5.67 validates a state machine definition at plan time with the
Step Functions ValidateStateMachineDefinition API, which the pinned moto server
does not implement (it answers 500, and the provider retries until it gives up);
nor does it implement ListStateMachineVersions, which the provider calls on every
read of a state machine. This proxy answers those two calls itself:
- ValidateStateMachineDefinition: a definition that parses as a JSON object with
  StartAt and States is "OK", anything else "FAIL" (the real ASL check is
  asl-validator in scripts/check-terraform.sh);
- ListStateMachineVersions: no versions (the module never publishes one).
Every other request is forwarded to moto unchanged.

    local-aws-proxy.py UPSTREAM_URL URL_FILE

Listens on a free 127.0.0.1 port, writes its own URL to URL_FILE once it accepts
connections, and serves until killed. Standard library only.
"""
import http.client
import http.server
import json
import sys
import urllib.parse

VALIDATE_TARGET = "AWSStepFunctions.ValidateStateMachineDefinition"
LIST_VERSIONS_TARGET = "AWSStepFunctions.ListStateMachineVersions"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def validation_result(body: bytes) -> dict:
    try:
        definition = json.loads(json.loads(body or b"{}").get("definition", ""))
    except (ValueError, AttributeError) as err:
        return {
            "result": "FAIL",
            "diagnostics": [{"severity": "ERROR", "code": "INVALID_JSON_DESCRIPTION", "message": str(err)}],
            "truncated": False,
        }
    if not isinstance(definition, dict) or "StartAt" not in definition or "States" not in definition:
        return {
            "result": "FAIL",
            "diagnostics": [{"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED", "message": "StartAt and States are required"}],
            "truncated": False,
        }
    return {"result": "OK", "diagnostics": [], "truncated": False}


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream: urllib.parse.SplitResult

    def log_message(self, format, *args):  # noqa: A002 - quiet: terraform's own output is what matters
        pass

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, headers: list, body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self) -> None:
        body = self.read_body()
        if self.headers.get("X-Amz-Target") == VALIDATE_TARGET:
            payload = json.dumps(validation_result(body)).encode()
            self.reply(200, [("Content-Type", "application/x-amz-json-1.0")], payload)
            return
        if self.headers.get("X-Amz-Target") == LIST_VERSIONS_TARGET:
            payload = json.dumps({"stateMachineVersions": []}).encode()
            self.reply(200, [("Content-Type", "application/x-amz-json-1.0")], payload)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=120)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self.reply(resp.status, resp.getheaders(), data)
        except OSError as err:
            self.reply(502, [("Content-Type", "text/plain")], f"local-aws-proxy: upstream error: {err}".encode())
        finally:
            conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_any


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: local-aws-proxy.py UPSTREAM_URL URL_FILE")
    Proxy.upstream = urllib.parse.urlsplit(sys.argv[1])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        out.write(f"http://127.0.0.1:{server.server_address[1]}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
