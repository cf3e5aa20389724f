"""Region resolution: explicit first, cloud metadata only when enabled (loopback server only)."""

from __future__ import annotations

import time

import pytest

from tests.intensity.fakeserver import FakeServer, Reply
from wattprint.intensity.location import resolve_region


def urls(server: FakeServer) -> dict[str, str]:
    return {"gcp_url": server.url, "aws_url": server.url, "azure_url": server.url}


def test_explicit_wins_and_nothing_is_contacted(server: FakeServer) -> None:
    server.routes["/computeMetadata/v1/instance/zone"] = Reply(200, b"projects/1/zones/europe-west9-a")
    assert resolve_region(" FR ", detect_cloud=True, **urls(server)) == ("FR", "configured")
    assert resolve_region(None, **urls(server)) == ("WORLD", "default: no region configured")
    assert server.requests == []


def test_gcp_zone_maps_to_the_region(server: FakeServer) -> None:
    server.routes["/computeMetadata/v1/instance/zone"] = Reply(
        200, b"projects/123456/zones/europe-west9-a", headers={"Metadata-Flavor": "Google"}
    )
    assert resolve_region(None, detect_cloud=True, **urls(server)) == (
        "gcp:europe-west9",
        "detected: GCP metadata, zone europe-west9-a",
    )
    assert server.requests[0].headers["metadata-flavor"] == "Google"


def test_aws_imdsv2_token_then_region(server: FakeServer) -> None:
    server.routes["/latest/api/token"] = Reply(200, b"AQAEAtoken==")
    server.routes["/latest/meta-data/placement/region"] = Reply(200, b"eu-west-1")
    region, how = resolve_region(None, detect_cloud=True, **urls(server))
    assert (region, how) == ("aws:eu-west-1", "detected: AWS instance metadata (IMDSv2)")
    put, get, instance_type = [r for r in server.requests if r.path.startswith("/latest")]
    assert put.method == "PUT" and "x-aws-ec2-metadata-token-ttl-seconds" in put.headers
    assert get.headers["x-aws-ec2-metadata-token"] == "AQAEAtoken=="
    assert instance_type.path == "/latest/meta-data/instance-type"  # asked too; absent here (404): no type
    assert instance_type.headers["x-aws-ec2-metadata-token"] == "AQAEAtoken=="


def test_azure_instance_metadata(server: FakeServer) -> None:
    server.routes["/metadata/instance"] = Reply.fixture("azure_instance.json")
    assert resolve_region(None, detect_cloud=True, **urls(server)) == (
        "azure:westeurope",
        "detected: Azure instance metadata",
    )
    seen = server.requests[-1]
    assert seen.headers["metadata"] == "true" and seen.query == {"api-version": ["2021-02-01"]}


def test_no_metadata_service_says_so(server: FakeServer) -> None:
    server.routes["/metadata/instance"] = Reply(200, b"garbage")
    assert resolve_region(None, detect_cloud=True, **urls(server)) == (
        "WORLD",
        "default: no region configured (cloud detection found no metadata service)",
    )


def test_detection_is_bounded_by_the_timeout(server: FakeServer) -> None:
    server.prefixes["/"] = Reply(200, b"x", delay_s=2.0)
    began = time.perf_counter()
    region, _ = resolve_region(None, detect_cloud=True, timeout_s=0.1, **urls(server))
    assert region == "WORLD" and time.perf_counter() - began < 1.5


@pytest.mark.parametrize("blank", ["", "  "])
def test_blank_explicit_is_not_a_setting(blank: str) -> None:
    assert resolve_region(blank)[0] == "WORLD"


def test_metadata_also_names_the_instance_type(server: FakeServer) -> None:
    from wattprint.intensity.location import cloud_metadata

    server.routes["/latest/api/token"] = Reply(200, b"tok")
    server.routes["/latest/meta-data/placement/region"] = Reply(200, b"eu-west-3")
    server.routes["/latest/meta-data/instance-type"] = Reply(200, b"m5.large\n")
    facts = cloud_metadata(**urls(server))
    assert facts is not None and (facts.region, facts.instance_type) == ("aws:eu-west-3", "aws:m5.large")


def test_gcp_and_azure_instance_types(server: FakeServer) -> None:
    from wattprint.intensity.location import cloud_metadata

    server.routes["/metadata/instance"] = Reply.fixture("azure_instance.json")
    azure = cloud_metadata(**urls(server))
    assert azure is not None and azure.instance_type == "azure:Standard_NC24ads_A100_v4"
    google = {"Metadata-Flavor": "Google"}
    server.routes["/computeMetadata/v1/instance/zone"] = Reply(200, b"projects/1/zones/europe-west9-a", headers=google)
    server.routes["/computeMetadata/v1/instance/machine-type"] = Reply(
        200, b"projects/1/machineTypes/n2-standard-4", headers=google
    )
    gcp = cloud_metadata(**urls(server))
    assert gcp is not None and (gcp.region, gcp.instance_type) == ("gcp:europe-west9", "gcp:n2-standard-4")


def test_a_tracker_with_detection_on_takes_the_instance_type_from_metadata(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch, wattprint_env: object
) -> None:
    from wattprint.intensity import location
    from wattprint.tracking.tracker import Tracker

    for name in ("GCP_METADATA_URL", "AWS_METADATA_URL", "AZURE_METADATA_URL"):
        monkeypatch.setattr(location, name, server.url)
    server.routes["/latest/api/token"] = Reply(200, b"tok")
    server.routes["/latest/meta-data/placement/region"] = Reply(200, b"eu-west-3")
    server.routes["/latest/meta-data/instance-type"] = Reply(200, b"m5.large")
    rec = Tracker("meta", region="FR", detect_cloud=True, interval=0.05).start().stop()
    assert rec.region == "FR"  # the configured region stands; the instance type still comes from metadata
    guest = rec.hardware["guest"]
    assert guest["instance_type"] == "aws:m5.large" and guest["instance_type_source"] == "cloud metadata service"
    assert guest["host_vcpus"] == 96 and "host of aws m5.large" in rec.attribution["host_share_rule"]


def test_a_failed_instance_type_request_keeps_the_region(server: FakeServer) -> None:
    from wattprint.intensity.location import cloud_metadata

    server.routes["/latest/api/token"] = Reply(200, b"tok")
    server.routes["/latest/meta-data/placement/region"] = Reply(200, b"eu-west-3")
    server.routes["/latest/meta-data/instance-type"] = Reply(200, b"m5.large", delay_s=2.0)  # past the timeout
    facts = cloud_metadata(timeout_s=0.3, **urls(server))
    assert facts is not None and (facts.region, facts.instance_type) == ("aws:eu-west-3", None)
