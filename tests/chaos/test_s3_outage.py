"""The S3 server fails writes (503) and stalls them for a while: writes retry, nothing partial or orphaned."""

from __future__ import annotations

import io
import threading
import time

import boto3
from PIL import Image

from homeshots.embedded import free_port
from tests.chaos.conftest import CHAOS_ENV
from tests.chaos.fault_proxy import FaultProxy
from tests.chaos.invariants import assert_nothing_lost_nothing_twice
from tests.integration.helpers import make_catalog, sandbox_for, write_csv

PROPERTIES = 40
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def test_s3_errors_and_stalls_are_ridden_out(tmp_path, cluster_factory, redis_server):
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="chaos")
    listings, photos = make_catalog(PROPERTIES, photos_each=2, size=(480, 360))
    props = write_csv(tmp_path / "props.csv", listings)
    try:
        with sandbox_for(listings, photos, latency=0.02) as sandbox, FaultProxy(f"http://127.0.0.1:{port}") as proxy:
            env = sandbox.env() | CHAOS_ENV | CREDS | {
                "HOMESHOTS_STORE_URL": "s3://chaos/run", "HOMESHOTS_S3_ENDPOINT_URL": proxy.url,
                "HOMESHOTS_DOWNLOAD_TIMEOUT": "3", "HOMESHOTS_WINDOW_SIZE": "10"}
            cluster = cluster_factory(env, concurrency=2)

            def outage() -> None:
                time.sleep(1.0)
                proxy.fail(25)
                time.sleep(2.0)
                proxy.stall(4, 5.0)

            threading.Thread(target=outage, daemon=True).start()
            proc = cluster.cli("backfill", str(props), "--run-id", "s3chaos", timeout=500)
            assert proc.returncode == 0, proc.stdout + proc.stderr + cluster.worker_log()
            assert proxy.failed == 25 and proxy.stalled == 4, "the outage happened during the run"
            # A property that ran out of time during the outage failed with a reason; resume retries it.
            retried = cluster.cli("backfill", str(props), "--run-id", "s3chaos", timeout=300)
            assert retried.returncode == 0, retried.stdout + retried.stderr

        def objects() -> set[str]:
            return {o["Key"].removeprefix("run/")
                    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="chaos", Prefix="run/processed/")
                    for o in page.get("Contents", [])}

        assert_nothing_lost_nothing_twice(cluster, "s3chaos", redis_server.client(), properties=PROPERTIES,
                                          images_per_property=2, extra_images=2, processed_objects=objects)
        for key in objects():
            body = s3.get_object(Bucket="chaos", Key="run/" + key)["Body"].read()
            with Image.open(io.BytesIO(body)) as im:
                im.load()  # a partial object would not decode
    finally:
        moto.stop()
