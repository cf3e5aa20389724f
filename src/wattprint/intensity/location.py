"""Where the run happens: the configured region first, cloud metadata only when asked, never a guess.

`resolve_region` returns the region and how it was found, for the record. Cloud detection asks the
GCP, AWS (IMDSv2) and Azure instance-metadata services with a short timeout and no retries; it runs
only with `detect_cloud=True`. It also reads the instance type (`cloud_metadata`), which gives a virtual
machine its host's figures (see measure/vcpu.py). The endpoints can be overridden (tests use a loopback server).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wattprint.intensity.static import WORLD_REGION

if TYPE_CHECKING:  # httpx loads only when cloud detection is enabled: keeps tracker start fast
    import httpx

log = logging.getLogger("wattprint.intensity")

GCP_METADATA_URL = "http://metadata.google.internal"
AWS_METADATA_URL = "http://169.254.169.254"
AZURE_METADATA_URL = "http://169.254.169.254"
DEFAULT_HOW = "default: no region configured"


@dataclass(frozen=True)
class CloudFacts:
    """What a cloud metadata service said: the region (as wattprint names it), how, and the instance type."""

    region: str
    how: str
    instance_type: str | None = None  # "aws:m5.large", "gcp:n2-standard-4", "azure:Standard_D2s_v3"


def _plain(text: str) -> str | None:
    value = text.strip()
    return value if value and " " not in value and "\n" not in value else None


def _second(client: httpx.Client, url: str, headers: dict[str, str]) -> str | None:
    """The instance type, asked after the region: a failure here loses the type only, never the region."""
    import httpx

    try:
        response = client.get(url, headers=headers)
    except httpx.HTTPError:
        return None
    return _plain(response.text.rsplit("/", 1)[-1]) if response.status_code == 200 else None


def _gcp(client: httpx.Client, base: str) -> CloudFacts | None:
    headers = {"Metadata-Flavor": "Google"}
    response = client.get(f"{base}/computeMetadata/v1/instance/zone", headers=headers)
    if response.status_code != 200 or response.headers.get("metadata-flavor", "Google") != "Google":
        return None
    zone = response.text.strip().rsplit("/", 1)[-1]  # projects/123/zones/europe-west9-a
    region = zone.rsplit("-", 1)[0] if zone.count("-") >= 2 else zone
    if not region:
        return None
    kind = _second(client, f"{base}/computeMetadata/v1/instance/machine-type", headers)  # .../machineTypes/e2-m
    return CloudFacts(f"gcp:{region}", f"detected: GCP metadata, zone {zone}", f"gcp:{kind}" if kind else None)


def _aws(client: httpx.Client, base: str) -> CloudFacts | None:
    token = client.put(f"{base}/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    if token.status_code != 200 or not token.text.strip():
        return None
    headers = {"X-aws-ec2-metadata-token": token.text.strip()}
    response = client.get(f"{base}/latest/meta-data/placement/region", headers=headers)
    region = response.text.strip()
    if response.status_code != 200 or not region or " " in region:
        return None
    kind = _second(client, f"{base}/latest/meta-data/instance-type", headers)
    return CloudFacts(f"aws:{region}", "detected: AWS instance metadata (IMDSv2)", f"aws:{kind}" if kind else None)


def _azure(client: httpx.Client, base: str) -> CloudFacts | None:
    response = client.get(
        f"{base}/metadata/instance", params={"api-version": "2021-02-01"}, headers={"Metadata": "true"}
    )
    if response.status_code != 200:
        return None
    compute = response.json().get("compute", {})
    location = compute.get("location") if isinstance(compute, dict) else None
    if not isinstance(location, str) or not location.strip():
        return None
    size = compute.get("vmSize")
    kind = _plain(size) if isinstance(size, str) else None
    region = f"azure:{location.strip().lower()}"
    return CloudFacts(region, "detected: Azure instance metadata", f"azure:{kind}" if kind else None)


def cloud_metadata(
    timeout_s: float = 0.5,
    gcp_url: str | None = None,
    aws_url: str | None = None,
    azure_url: str | None = None,
) -> CloudFacts | None:
    """What the first cloud metadata service that answers says (region, instance type), else None. Network:
    call it only where the user turned detection on."""
    import httpx

    probes: list[tuple[str, Callable[[httpx.Client, str], CloudFacts | None], str]] = [
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
    region, how, _facts = resolve_location(explicit, detect_cloud, timeout_s, urls=(gcp_url, aws_url, azure_url))
    return region, how


def resolve_location(
    explicit: str | None,
    detect_cloud: bool = False,
    timeout_s: float = 0.5,
    *,
    urls: tuple[str | None, str | None, str | None] = (None, None, None),
) -> tuple[str, str, CloudFacts | None]:
    """`resolve_region`'s (region, how) and what the metadata service said (asked once, with detection on, also
    where the region is configured: the instance type is wanted there too). `urls`: GCP, AWS, Azure endpoints."""
    facts = cloud_metadata(timeout_s, *urls) if detect_cloud else None
    if explicit is not None and explicit.strip():
        return explicit.strip(), "configured", facts
    if facts is not None:
        return facts.region, facts.how, facts
    if detect_cloud:
        return WORLD_REGION, f"{DEFAULT_HOW} (cloud detection found no metadata service)", None
    return WORLD_REGION, DEFAULT_HOW, None
