"""Where the run happens: the configured region first, cloud metadata only when asked, never a guess.

`resolve_region` returns the region and how it was found, for the record. Cloud detection asks the
GCP, AWS (IMDSv2) and Azure instance-metadata services with a short timeout and no retries; it runs
only with `detect_cloud=True`. The endpoints can be overridden (tests use a loopback server).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from wattprint.intensity.static import WORLD_REGION

if TYPE_CHECKING:  # httpx loads only when cloud detection is enabled: keeps tracker start fast
    import httpx

log = logging.getLogger("wattprint.intensity")

GCP_METADATA_URL = "http://metadata.google.internal"
AWS_METADATA_URL = "http://169.254.169.254"
AZURE_METADATA_URL = "http://169.254.169.254"
DEFAULT_HOW = "default: no region configured"


def _gcp(client: httpx.Client, base: str) -> tuple[str, str] | None:
    response = client.get(f"{base}/computeMetadata/v1/instance/zone", headers={"Metadata-Flavor": "Google"})
    if response.status_code != 200 or response.headers.get("metadata-flavor", "Google") != "Google":
        return None
    zone = response.text.strip().rsplit("/", 1)[-1]  # projects/123/zones/europe-west9-a
    region = zone.rsplit("-", 1)[0] if zone.count("-") >= 2 else zone
    if not region:
        return None
    return f"gcp:{region}", f"detected: GCP metadata, zone {zone}"


def _aws(client: httpx.Client, base: str) -> tuple[str, str] | None:
    token = client.put(f"{base}/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    if token.status_code != 200 or not token.text.strip():
        return None
    response = client.get(
        f"{base}/latest/meta-data/placement/region",
        headers={"X-aws-ec2-metadata-token": token.text.strip()},
    )
    region = response.text.strip()
    if response.status_code != 200 or not region or " " in region:
        return None
    return f"aws:{region}", "detected: AWS instance metadata (IMDSv2)"


def _azure(client: httpx.Client, base: str) -> tuple[str, str] | None:
    response = client.get(
        f"{base}/metadata/instance", params={"api-version": "2021-02-01"}, headers={"Metadata": "true"}
    )
    if response.status_code != 200:
        return None
    compute = response.json().get("compute", {})
    location = compute.get("location") if isinstance(compute, dict) else None
    if not isinstance(location, str) or not location.strip():
        return None
    return f"azure:{location.strip().lower()}", "detected: Azure instance metadata"


def detect_cloud_region(
    timeout_s: float = 0.5,
    gcp_url: str | None = None,
    aws_url: str | None = None,
    azure_url: str | None = None,
) -> tuple[str, str] | None:
    """(region, how) from the first cloud metadata service that answers, else None. Network: opt-in."""
    import httpx

    probes: list[tuple[str, Callable[[httpx.Client, str], tuple[str, str] | None], str]] = [
        ("GCP", _gcp, (gcp_url or GCP_METADATA_URL).rstrip("/")),
        ("AWS", _aws, (aws_url or AWS_METADATA_URL).rstrip("/")),
        ("Azure", _azure, (azure_url or AZURE_METADATA_URL).rstrip("/")),
    ]
    # trust_env=False: a metadata service is link-local, never behind the user's HTTP proxy
    with httpx.Client(timeout=timeout_s, trust_env=False, follow_redirects=False) as client:
        for name, probe, base in probes:
            try:
                found = probe(client, base)
            except (httpx.HTTPError, ValueError, AttributeError) as exc:
                log.debug("no %s metadata service (%s)", name, type(exc).__name__)
                continue
            if found is not None:
                return found
    return None


def resolve_region(
    explicit: str | None,
    detect_cloud: bool = False,
    timeout_s: float = 0.5,
    *,
    gcp_url: str | None = None,
    aws_url: str | None = None,
    azure_url: str | None = None,
) -> tuple[str, str]:
    """(region, how it was found): explicit setting > cloud metadata (if enabled) > WORLD default."""
    if explicit is not None and explicit.strip():
        return explicit.strip(), "configured"
    if detect_cloud:
        found = detect_cloud_region(timeout_s, gcp_url, aws_url, azure_url)
        if found is not None:
            return found
        return WORLD_REGION, f"{DEFAULT_HOW} (cloud detection found no metadata service)"
    return WORLD_REGION, DEFAULT_HOW
