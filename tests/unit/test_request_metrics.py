"""Per-source request latency: the fetcher's observe hook, the Redis recorder, and what the exporter serves."""

from __future__ import annotations

import asyncio
import math

import httpx
import pytest
import redis
from prometheus_client.core import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry

from homeshots.core.errors import FetchUnavailableError
from homeshots.core.models import Property
from homeshots.core.settings import Settings
from homeshots.network.fetcher import Fetcher, FetchPolicy
from homeshots.network.urlguard import URLGuard
from homeshots.ops.embedded import free_port
from homeshots.ops.metrics import HomeshotsCollector
from homeshots.sources import ZillowExtractor, build_extractor
from managers import keys
from managers.request_metrics import LATENCY_BUCKETS, RequestRecorder, bucket_field, status_class


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_status_classes_and_bucket_fields() -> None:
    assert [status_class(s) for s in (200, 304, 404, 503, 0, 999)] == ["2xx", "3xx", "4xx", "5xx", "error", "error"]
    assert bucket_field(0.05) == "le:0.05" and bucket_field(1.0) == "le:1" and bucket_field(math.inf) == "le:+Inf"


def test_recorder_writes_cumulative_buckets_sum_count_and_codes(redis_server) -> None:
    client = redis_server.client()
    record = RequestRecorder(client, "mls", flush_every=0)
    for seconds, status in ((0.03, 200), (0.7, 503), (70.0, 0)):
        record(seconds, status)
    fields = client.hgetall(keys.request_latency("mls"))
    assert fields["le:0.05"] == fields["le:0.1"] == fields["le:0.5"] == "1"
    assert fields["le:1"] == fields["le:60"] == "2", "buckets are cumulative"
    assert fields["le:+Inf"] == fields["count"] == "3"
    assert float(fields["sum"]) == pytest.approx(70.73)
    assert (fields["code:2xx"], fields["code:5xx"], fields["code:error"]) == ("1", "1", "1")
    assert {f for f in fields if f.startswith("le:")} == {bucket_field(b) for b in (*LATENCY_BUCKETS, math.inf)}


def test_recorder_batches_writes_and_flushes_on_demand(redis_server) -> None:
    client, clock = redis_server.client(), Clock()
    record = RequestRecorder(client, "zillow", flush_every=5, clock=clock)
    record(0.2, 200)  # the first observation is written at once
    record(0.2, 200)
    record(0.2, 404)
    key = keys.request_latency("zillow")
    assert client.hget(key, "count") == "1", "held in memory until flush_every has passed"
    clock.now += 5
    record(0.2, 200)
    assert client.hget(key, "count") == "4"
    record(3.0, 200)
    assert record.flush() and client.hget(key, "count") == "5" and client.hget(key, "code:4xx") == "1"


def test_recorder_never_raises_keeps_counts_and_reports_its_errors(redis_server) -> None:
    clock = Clock()
    down = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0), decode_responses=True)
    record = RequestRecorder(down, "redfin", flush_every=1, backoff=30, clock=clock)
    record(0.1, 200)  # Redis unreachable: swallowed, counted, kept
    record(0.2, 200)
    assert record.errors == 1, "no second try before the back-off has passed"
    record.client = redis_server.client()
    clock.now += 30
    record(0.3, 200)
    fields = redis_server.client().hgetall(keys.request_latency("redfin"))
    assert fields["count"] == "3" and fields["errors"] == "1" and float(fields["sum"]) == pytest.approx(0.6)


def test_recorder_survives_a_broken_client() -> None:
    class Broken:
        def pipeline(self, **_: object) -> None:
            raise RuntimeError("not a Redis error")

    record = RequestRecorder(Broken(), "mls", flush_every=0)  # type: ignore[arg-type]
    record(0.1, 200)
    record(float("nan"), 200)
    assert record.errors == 1, "one failed write, then the back-off"
    assert record.flush() is False and record.errors == 2


def _fetch(handler, observe, policy: FetchPolicy) -> object:
    async def run() -> object:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            fetcher = Fetcher(client, URLGuard(["127.0.0.1"]), sleep=lambda _: asyncio.sleep(0), observe=observe)
            return await fetcher.fetch("http://127.0.0.1:9/page", policy, follow=lambda a, b: None)

    return asyncio.run(run())


def test_fetcher_tells_observe_of_every_attempt_and_hop() -> None:
    seen: list[tuple[float, int]] = []
    policy = FetchPolicy(timeout=2, deadline=5, max_bytes=1 << 20, retries=2)

    def answers(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/page":
            return httpx.Response(302, headers={"Location": "/moved"})
        attempts = sum(1 for _, s in seen if s == 503)
        return httpx.Response(503 if attempts == 0 else 200, content=b"ok")

    assert _fetch(answers, lambda s, status: seen.append((s, status)), policy).status_code == 200  # type: ignore[attr-defined]
    assert [status for _, status in seen] == [302, 503, 302, 200], "each hop of each attempt"
    assert all(0 <= s < 5 for s, _ in seen)

    seen.clear()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(FetchUnavailableError):
        _fetch(refuse, lambda s, status: seen.append((s, status)), policy)
    assert [status for _, status in seen] == [0, 0, 0], "a transport error is status 0"


def test_http_extractors_pass_observe_to_their_fetcher() -> None:
    def observe(seconds: float, status: int) -> None: ...

    async def build() -> tuple[object, object]:
        async with httpx.AsyncClient() as client:
            return ZillowExtractor(client, Settings(), observe=observe).fetcher.observe, ZillowExtractor(
                client, Settings()
            ).fetcher.observe

    assert asyncio.run(build()) == (observe, None)


def test_exporter_serves_the_recorded_histogram(redis_server) -> None:
    client = redis_server.client()
    record = RequestRecorder(client, "mls", flush_every=0)
    for seconds, status in ((0.03, 200), (0.7, 200), (2.0, 429), (9.0, 0)):
        record(seconds, status)
    registry = CollectorRegistry()
    registry.register(HomeshotsCollector(client, Settings(redis_url=redis_server.url)))
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for s in families["homeshots_source_request_seconds"].samples
    }
    bucket = "homeshots_source_request_seconds_bucket"
    assert families["homeshots_source_request_seconds"].type == "histogram"
    assert samples[(bucket, (("le", "0.05"), ("source", "mls")))] == 1
    assert samples[(bucket, (("le", "1.0"), ("source", "mls")))] == 2
    assert samples[(bucket, (("le", "10.0"), ("source", "mls")))] == 4
    assert samples[(bucket, (("le", "+Inf"), ("source", "mls")))] == 4
    record_z = RequestRecorder(client, "zillow", flush_every=0)
    record_z(3.0, 200)  # only the buckets from 5 s up are written: the lower ones are served as 0
    registry = CollectorRegistry()
    registry.register(HomeshotsCollector(client, Settings(redis_url=redis_server.url)))
    text = generate_latest(registry).decode()
    zillow = [s for f in text_string_to_metric_families(text) for s in f.samples if s.labels.get("source") == "zillow"]
    served = {s.labels["le"]: s.value for s in zillow if s.name == bucket}
    assert list(served) == [*(str(float(b)) for b in LATENCY_BUCKETS), "+Inf"]
    assert served["2.5"] == 0 and served["5.0"] == served["+Inf"] == 1
    assert samples[("homeshots_source_request_seconds_count", (("source", "mls"),))] == 4
    assert samples[("homeshots_source_request_seconds_sum", (("source", "mls"),))] == pytest.approx(11.73)
    codes = {s.labels["code"]: s.value for s in families["homeshots_source_responses"].samples}
    assert codes == {"2xx": 2, "4xx": 1, "error": 1}


def test_the_worker_context_line_records_an_extractors_requests(redis_server) -> None:
    """What worker_context adds after building an extractor: its fetcher's observe is a RequestRecorder."""
    client = redis_server.client()
    settings = Settings(zillow_base_url="http://127.0.0.1:9/zillow")

    def not_listed(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html>Page not found</html>")

    async def run() -> list:
        async with httpx.AsyncClient(transport=httpx.MockTransport(not_listed)) as http:
            extractor = build_extractor("zillow", http, settings, None)
            extractor.fetcher.observe = RequestRecorder(client, "zillow")  # the line for worker_context.py
            return await extractor.extract(Property("p1", "1 Test St", "Phoenix", "AZ", "85001"))

    assert asyncio.run(run()) == []
    fields = client.hgetall(keys.request_latency("zillow"))
    assert fields["count"] == fields["code:4xx"] == "1"
