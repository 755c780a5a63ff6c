#!/usr/bin/env python3
"""Bootstrap size and cold start of every function, as a Markdown table.

    python3 infra/bench-bootstraps.py [--build] [--runs 5] [BIN ...]

`--build` first runs `cargo lambda build --release` (what `sam build` runs)
for the chosen binaries. Each bootstrap is then started as Lambda starts it:
a fresh process with `AWS_LAMBDA_RUNTIME_API` pointing at a local Lambda
Runtime API (this script serves one), the function's environment from the
local stack, so its cold start reads its
secrets and programs from the local emulator as it would from AWS
(`.local/lambda.env`, the environment `cargo lambda watch` uses). Measured
per run, from process start:

- init: until the runtime asks for its first event (`/invocation/next`),
  i.e. configuration, secrets, clients;
- first event: until it posts the answer to that event (a harmless one:
  an empty SQS, SNS or stream batch, a scheduled tick, an unsigned HTTP
  request that is refused).

Median of the runs. The emulator answers in well under a millisecond, so
the AWS calls cost less here than in a region; Lambda's own download and
unpacking of the package (which grows with its size) is not included.
"""

from __future__ import annotations

import http.server
import json
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/optline/target"))


def http_event(method: str, path: str, body: str = "") -> dict:
    now = int(time.time() * 1000)
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "user-agent": "bench"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "bench",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": now,
        },
        "body": body,
        "isBase64Encoded": False,
    }


SCHEDULED = {
    "version": "0",
    "id": "bench",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-12-06T12:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {},
}

# The binary, the template's function (for the table) and a harmless event.
FUNCTIONS = [
    ("inbound", "InboundFunction", http_event("POST", "/twilio/inbound", "Body=hi")),
    ("inbound-two-way", "InboundTwoWayFunction", {"Records": []}),
    ("reconcile", "ReconcileFunction", SCHEDULED),
    ("ehr-events", "EhrEventsFunction", http_event("POST", "/ehr/fhir", "{}")),
    ("consent-api", "ConsentApiFunction", http_event("GET", "/contacts/pat-1/consent")),
    ("templates", "TemplatesFunction", http_event("GET", "/templates")),
    ("dispatch-dry-run", "SweepDryRunFunction", http_event("GET", "/sweep/dry-run")),
    ("sweep", "SweepFunction", SCHEDULED),
    ("dispatch", "DispatchFunction", {"Records": []}),
    ("outbox-drain", "OutboxDrainFunction", {"Records": []}),
    ("audit-anchor", "AuditAnchorFunction", SCHEDULED),
]


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """The Lambda Runtime API, one event per process."""

    event: dict = {}
    marks: dict = {}
    done = threading.Event()

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if self.path.endswith("/invocation/next"):
            type(self).marks.setdefault("next", time.perf_counter())
            if "delivered" in type(self).marks:
                # The runtime asks again after answering: hold it until
                # the process is stopped.
                time.sleep(5)
                self.send_response(500)
                self.end_headers()
                return
            type(self).marks["delivered"] = time.perf_counter()
            body = json.dumps(type(self).event).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Lambda-Runtime-Aws-Request-Id", str(uuid.uuid4()))
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
            self.send_header(
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench",
            )
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length)
        kind = "error" if "/error" in self.path else "response"
        type(self).marks[kind] = time.perf_counter()
        type(self).marks["payload"] = payload[:300].decode(errors="replace")
        self.send_response(202)
        self.end_headers()
        type(self).done.set()


def stack_env() -> dict:
    """The environment `cargo lambda watch` gets (`.local/lambda.env`,
    written by `local-stack.py start`)."""
    env = {}
    for line in (ROOT / ".local/lambda.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def run_once(binary: Path, function: str, event: dict, base_env: dict) -> dict:
    RuntimeApi.event = event
    RuntimeApi.marks = {}
    RuntimeApi.done = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        **base_env,
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "RUST_LOG": "warn",
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    finished = RuntimeApi.done.wait(timeout=30)
    proc.kill()
    _, stderr = proc.communicate()
    server.shutdown()
    server.server_close()
    marks = RuntimeApi.marks
    if not finished or "next" not in marks:
        raise SystemExit(
            f"{binary.parent.name}: no answer within 30 s; stderr: {stderr.decode()[-600:]}"
        )
    return {
        "init": (marks["next"] - start) * 1000,
        "first": (marks.get("response", marks.get("error", 0)) - start) * 1000,
        "kind": "response" if "response" in marks else "error",
    }


def main() -> None:
    args = sys.argv[1:]
    build = "--build" in args
    runs = 5
    if "--runs" in args:
        runs = int(args[args.index("--runs") + 1])
    chosen = [a for a in args if not a.startswith("--") and not a.isdigit()]
    functions = [f for f in FUNCTIONS if not chosen or f[0] in chosen]
    if build:
        cmd = ["cargo", "lambda", "build", "--release"]
        for name, _, _ in functions:
            cmd += ["--bin", name]
        subprocess.run(cmd, cwd=ROOT, check=True)
    started = False
    if subprocess.run(
        [sys.executable, str(ROOT / "infra/local-stack.py"), "status"],
        capture_output=True,
        text=True,
    ).stdout.strip() != "running":
        subprocess.run(
            [sys.executable, str(ROOT / "infra/local-stack.py"), "start"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        started = True
    try:
        base_env = {**os.environ, **stack_env()}
        base_env.pop("TWILIO_AUTH_TOKEN", None)
        print("| function | bootstrap (MB) | init (ms) | first event handled (ms) | answer |")
        print("|---|---:|---:|---:|---|")
        for name, function, event in functions:
            binary = TARGET / "lambda" / name / "bootstrap"
            if not binary.exists():
                print(f"| {name} | not built | | | |")
                continue
            size = binary.stat().st_size / 1e6
            results = [run_once(binary, function, event, base_env) for _ in range(runs)]
            init = statistics.median(r["init"] for r in results)
            first = statistics.median(r["first"] for r in results)
            print(
                f"| {name} | {size:.2f} | {init:.0f} | {first:.0f} | {results[-1]['kind']} |"
            )
    finally:
        if started:
            subprocess.run(
                [sys.executable, str(ROOT / "infra/local-stack.py"), "stop"],
                stdout=subprocess.DEVNULL,
            )


if __name__ == "__main__":
    main()
