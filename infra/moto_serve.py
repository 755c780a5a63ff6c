"""The local AWS emulator: moto's own server, with DynamoDB requests applied
one at a time.

DynamoDB applies each conditional write atomically: of two concurrent
`UpdateItem` calls conditioned on `status = pending`, exactly one succeeds.
moto's threaded server checks a condition and applies the write in separate
steps, so both can succeed (two overlapping sweeps both "winning" one step).
Serializing DynamoDB requests restores that guarantee; every other service
(SQS long polls included) is served by moto exactly as `moto_server` serves
it. Usage: `python infra/moto_serve.py -H 127.0.0.1 -p 5000`.
"""

import argparse
import os
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (  # type: ignore
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple  # type: ignore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    app = DomainDispatcherApplication(create_backend_app)
    dynamodb = threading.Lock()

    def serve(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with dynamodb:
                # The whole response is built inside the lock.
                return list(app(environ, start_response))
        return app(environ, start_response)

    run_simple(
        args.host,
        args.port,
        serve,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
