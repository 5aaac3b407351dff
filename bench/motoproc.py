"""moto's S3 server in its own process, with a side door to load many objects quickly.

`python -m bench.motoproc` starts moto's threaded server on 127.0.0.1 (a real S3 API over
HTTP, in a process of its own, as S3 is to a Lambda function), prints its URL as a JSON line,
then reads JSON commands on stdin. Filling a bucket with 10,000+ objects through the S3 API
costs about 5 ms an object in moto; the `put_many` command writes them through moto's
backend in a fraction of that, so the benchmark spends its time measuring, not loading.
"""

from __future__ import annotations

import base64
import json
import sys


def main() -> int:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(json.dumps({"url": f"http://{host}:{port}"}), flush=True)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "put_many":
                body = base64.b64decode(command["body"])
                for key in command["keys"]:
                    backend.put_object(command["bucket"], key, body)
            elif command["op"] == "put_each":
                for key, data in command["objects"]:
                    backend.put_object(command["bucket"], key, base64.b64decode(data))
            print(json.dumps({"ok": True}), flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
