"""Per-source routing: Zillow's traffic (pages and photos) goes through its proxy, the MLS's does not."""

from __future__ import annotations

from homeshots_sandbox import SandboxServer

from tests.integration.forward_proxy import ForwardProxy
from tests.integration.helpers import make_catalog, status_json, write_csv


def test_zillow_goes_through_its_proxy_with_its_user_agent(tmp_path, cluster_factory):
    listings, photos = make_catalog(2, photos_each=2)
    for i, listing in enumerate(listings):
        listing.zpid = str(9_200_000 + i)
    props = write_csv(tmp_path / "props.csv", listings)
    with SandboxServer(listings, photos, services=["mls", "zillow"]) as sandbox, ForwardProxy() as proxy:
        env = sandbox.env() | {
            "HOMESHOTS_ZILLOW_PROXY_URL": proxy.url,
            "HOMESHOTS_ZILLOW_USER_AGENT": "Mozilla/5.0 (homeshots-test)",
        }
        cluster = cluster_factory(env)
        proc = cluster.cli("backfill", str(props), "--run-id", "proxied")
        assert proc.returncode == 0, proc.stderr + cluster.worker_log()
    result = status_json(cluster, "proxied")["result"]
    assert result["by_source"]["zillow"]["images_found"] == 4
    assert any(p.startswith("/zillow/homes/") or p.startswith("/zillow/homedetails/") for p in proxy.seen)
    assert any(p.startswith("/cdn/zillow/") for p in proxy.seen), "Zillow's photos too"
    assert not any(p.startswith(("/reso/", "/photos/", "/oauth2/")) for p in proxy.seen), "the MLS goes direct"
    assert proxy.user_agents == {"Mozilla/5.0 (homeshots-test)"}
