"""The local AWS emulator: moto's own server, with DynamoDB requests applied
one at a time.

DynamoDB applies each conditional write atomically: of two concurrent
`UpdateItem` calls conditioned on `status = pending`, exactly one succeeds.
moto's threaded server checks a condition and applies the write in separate
steps, so both can succeed (two overlapping sweeps both "winning" one step).
Serializing DynamoDB requests restores that guarantee (each request's body
is read before it waits for its turn, so a client slow to send one holds
no other request back); every other service
(SQS long polls included) is served by moto exactly as `moto_server` serves
it. A failed `TransactWriteItems` rolls back the items it names instead of
restoring deep copies of whole tables (same result, without the copies'
cost). Usage: `python infra/moto_serve.py -H 127.0.0.1 -p 5000`.
"""

import argparse
import io
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

import copy
import moto.dynamodb.models as dynamodb_models  # type: ignore
from moto.dynamodb.models import DynamoDBBackend  # type: ignore
from moto.dynamodb.models.dynamo_type import DynamoType  # type: ignore
from moto.dynamodb.models.table import Table  # type: ignore


class _TablesNotCopied:
    """`copy` as moto's DynamoDB backend sees it, except that a whole table is
    never deep-copied. moto backs up every table a transaction touches with
    `copy.deepcopy` (once per item of the transaction) to roll back a failed
    one, which takes seconds once a table holds a few thousand items. The
    rollback below restores only the items the transaction names instead,
    which is all a transaction can change."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


dynamodb_models.copy = _TablesNotCopied()
_transact_write_items = DynamoDBBackend.transact_write_items


def _transact_with_item_rollback(self, transact_items):
    saved = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = self.tables.get(op.get("TableName"))
        if table is None:
            continue
        key = op.get("Key") or op.get("Item") or {}
        if table.hash_key_attr not in key:
            continue
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = None
        if table.range_key_attr is not None:
            if table.range_key_attr not in key:
                continue
            range_key = DynamoType(key[table.range_key_attr])
        before = table.get_item(hash_key, range_key)
        saved.append((table, hash_key, range_key, copy.deepcopy(before)))
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        # Put back exactly what the named items were, newest change first.
        for table, hash_key, range_key, before in reversed(saved):
            if range_key is None:
                if before is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = before
            elif before is None:
                table.items.get(hash_key, {}).pop(range_key, None)
            else:
                table.items[hash_key][range_key] = before
        raise


DynamoDBBackend.transact_write_items = _transact_with_item_rollback


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
            # The body is read before the lock: a client slow to send it
            # must not hold every other DynamoDB request back.
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if length > 0:
                environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length))
            elif environ.get("wsgi.input_terminated"):
                # Chunked: the stream ends with the body.
                environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read())
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
