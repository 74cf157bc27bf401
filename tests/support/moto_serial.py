"""moto server that handles one request at a time.

moto's DynamoDB evaluates a ConditionExpression and applies the update without a lock, so two
concurrent conditional writes to one item can both succeed (about 1 in 100 four-way races on
moto 5.2.5). Real DynamoDB makes each conditional write atomic; the sweeper's concurrency test
relies on exactly that, so it runs against this wrapper: same moto, same CLI
(`moto_serial.py -H HOST -p PORT`), requests serialized by one lock.
"""

import sys
import threading

from moto import server
from moto.server import DomainDispatcherApplication

_lock = threading.Lock()
_dispatch = DomainDispatcherApplication.__call__


def _serialized(self, environ, start_response):
    with _lock:
        # Materialize the body inside the lock: the whole request is one critical section.
        return list(_dispatch(self, environ, start_response))


DomainDispatcherApplication.__call__ = _serialized

if __name__ == "__main__":
    server.main(sys.argv[1:])
