"""Lambda proxy events as API Gateway's REST API (payload 1.0) sends them, and a call counter."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from .common import PIP_HEADERS


def rest_event(route: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A GET of `/simple/<route>` through a REST API stage `simple` with `{package+}`."""
    return {
        "resource": "/{package+}" if route else "/",
        "path": "/" + route,
        "httpMethod": "GET",
        "headers": dict(headers if headers is not None else PIP_HEADERS),
        "multiValueHeaders": None,
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"package": route} if route else None,
        "stageVariables": None,
        "requestContext": {"stage": "simple", "path": "/simple/" + route, "httpMethod": "GET"},
        "body": None,
        "isBase64Encoded": False,
    }


def silence_logs() -> None:
    """Send every log line to /dev/null: still formatted and written, never shown."""
    sink = open(os.devnull, "w")  # noqa: SIM115 (open for the life of the process)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)


class CallCounter:
    """Counts and times the S3 API calls of a boto3 client (botocore's call events)."""

    def __init__(self, client: Any) -> None:
        self.count = 0
        self.seconds = 0.0
        self.operations: dict[str, int] = {}
        self._started = 0.0
        client.meta.events.register("before-call.s3", self._before)
        client.meta.events.register("after-call.s3", self._after)

    def _before(self, model: Any = None, **_: Any) -> None:
        self.count += 1
        name = getattr(model, "name", "?")
        self.operations[name] = self.operations.get(name, 0) + 1
        self._started = time.perf_counter()

    def _after(self, **_: Any) -> None:
        self.seconds += time.perf_counter() - self._started

    def reset(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.operations = {}


class StoreCounter:
    """Counts and times the requests a store sends, whatever its client: its request methods
    are wrapped on the instance (a presigned URL is signed locally: not a request)."""

    _REQUESTS = ("get", "head", "open", "put", "delete", "list", "list_folders")

    def __init__(self, store: Any) -> None:
        self.count = 0
        self.seconds = 0.0
        self.operations: dict[str, int] = {}
        for name in self._REQUESTS:
            setattr(store, name, self._counted(name, getattr(store, name)))

    def _counted(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            self.operations[name] = self.operations.get(name, 0) + 1
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return counted

    def reset(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.operations = {}


class CountingStore:
    """A store proxy that counts the store operations the application asks for."""

    _COUNTED = frozenset({"get", "head", "open", "put", "delete", "list", "list_folders"})

    def __init__(self, store: Any) -> None:
        self._store = store
        self.count = 0
        self.seconds = 0.0  # not timed: listings are lazy
        self.operations: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if name not in self._COUNTED:
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            self.operations[name] = self.operations.get(name, 0) + 1
            return value(*args, **kwargs)

        return counted

    def reset(self) -> None:
        self.count = 0
        self.operations = {}


Handler = Callable[[dict[str, Any]], dict[str, Any]]
