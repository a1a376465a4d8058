"""The S3 store over a real S3 protocol server (moto in server mode on 127.0.0.1)."""

from __future__ import annotations

import io

from PIL import Image

from tests.conftest import CREDS
from tests.integration.helpers import make_catalog, manifest_rows, sandbox_for, status_json, write_csv


def _objects(client, prefix: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket="homeshots-test", Prefix=prefix).get("Contents", [])
    return {o["Key"]: o["ETag"] for o in listed}


def test_backfill_into_s3_writes_each_object_once(tmp_path, cluster_factory, s3_server):
    endpoint, client = s3_server
    listings, photos = make_catalog(3)
    props = write_csv(tmp_path / "props.csv", listings)
    env = CREDS | {"HOMESHOTS_STORE_URL": "s3://homeshots-test/nightly", "HOMESHOTS_S3_ENDPOINT_URL": endpoint}
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env() | env)
        proc = cluster.cli("backfill", str(props), "--run-id", "s3run")
        assert proc.returncode == 0, proc.stderr + cluster.worker_log()
        processed = _objects(client, "nightly/processed/")
        assert len(processed) == 9  # 3 x 3 distinct photos; the exact and near copies are not stored
        assert len(_objects(client, "nightly/raw/")) == 9
        body = client.get_object(Bucket="homeshots-test", Key=next(iter(processed)))
        assert body["ContentType"] == "image/png"
        with Image.open(io.BytesIO(body["Body"].read())) as im:
            assert im.format == "PNG" and im.mode == "RGB" and max(im.size) <= 1024 and not im.getexif()
        result_key = "nightly/metadata/runs/s3run/result.json"
        assert client.head_object(Bucket="homeshots-test", Key=result_key)

        again = cluster.cli("backfill", str(props), "--run-id", "s3run", "--no-resume")
        assert again.returncode == 0, again.stderr
        assert _objects(client, "nightly/processed/") == processed, "a re-run rewrites no object"
    rows = manifest_rows(cluster, "s3run")
    assert {r["processed_key"] for r in rows} == {k.removeprefix("nightly/") for k in processed}
    assert status_json(cluster, "s3run")["result"]["unique_images"] == 9
