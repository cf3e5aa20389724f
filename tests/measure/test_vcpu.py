"""vCPU power and host shares from the bundled Cloud Carbon Footprint tables."""

from __future__ import annotations

import pytest

from wattprint.data.instances import find_instance
from wattprint.measure.vcpu import cpu_architecture, guest_figures, vcpu_power


@pytest.mark.parametrize(
    ("model", "architecture"),
    [
        ("Intel(R) Xeon(R) Platinum 8175M CPU @ 2.50GHz", "Skylake"),
        ("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz", "Cascade Lake"),
        ("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "Ice Lake"),
        ("Intel(R) Xeon(R) Platinum 8488C", "Sapphire Rapids"),
        ("Intel(R) Xeon(R) Silver 4214 CPU @ 2.20GHz", "Cascade Lake"),
        ("Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz", "Broadwell"),
        ("Intel(R) Xeon(R) CPU E5-2676 v3 @ 2.40GHz", "Haswell"),
        ("Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz", "Sandy Bridge"),
        ("AMD EPYC 7571", "EPYC 1st Gen"),
        ("AMD EPYC 7R32", "EPYC 2nd Gen"),
        ("AMD EPYC 7B13", "EPYC 3rd Gen"),
        ("AMD EPYC 9R14", "EPYC 4th Gen"),
        ("AWS Graviton2 Processor", "Graviton2"),
        ("Intel Xeon Ice Lake", "Ice Lake"),
        ("AMD EPYC", None),  # what a small VM often shows: the family only
        ("Intel(R) Xeon(R) Processor", None),
        ("Intel(R) Xeon(R) CPU @ 2.20GHz", None),
        ("AMD Ryzen 9 5950X", None),
    ],
)
def test_microarchitecture_from_the_cpu_name(model: str, architecture: str | None) -> None:
    assert cpu_architecture(model) == architecture


def test_vcpu_watts_by_architecture_and_the_median_where_unknown() -> None:
    skylake = vcpu_power(("Skylake",), "aws")
    assert (skylake.min_w, skylake.max_w) == pytest.approx((0.613, 4.1042))  # ccf-coefficients, AWS, Skylake
    assert skylake.architecture == "Skylake" and "Cloud Carbon Footprint" in skylake.source
    unknown = vcpu_power((), "aws")
    assert "median of aws's microarchitectures" in unknown.architecture
    assert 0.45 < unknown.min_w < 1.0 and 1.7 < unknown.max_w < 4.5  # between the EPYC and Intel rows
    # a type on several architectures gets their mean; a provider without the row borrows another's
    both = vcpu_power(("Skylake", "EPYC 2nd Gen"), "gcp")
    assert both.min_w == pytest.approx((0.6130 + 0.4743) / 2) and both.architecture == "Skylake or EPYC 2nd Gen"
    assert vcpu_power(("Haswell",), "gcp").min_w == pytest.approx(vcpu_power(("Haswell",), "aws").min_w)


@pytest.mark.parametrize(
    ("name", "provider", "vcpus", "host_vcpus"),
    [
        ("m5.large", "aws", 2, 96),
        ("aws:m5.large", "aws", 2, 96),
        ("M5.LARGE", "aws", 2, 96),
        ("gcp:n2-standard-4", "gcp", 4, 128),
        ("Standard_D2s_v3", "azure", 2, 64),
        ("D2s v3", "azure", 2, 64),
    ],
)
def test_instance_types_in_their_usual_spellings(name: str, provider: str, vcpus: int, host_vcpus: int) -> None:
    found = find_instance(name)
    assert found is not None and (found.provider, found.vcpus, found.host_vcpus) == (provider, vcpus, host_vcpus)


def test_an_unknown_instance_type_is_none() -> None:
    assert find_instance("m5.gigantic") is None and find_instance("gcp:m5.large") is None


def test_a_known_instance_uses_its_published_host() -> None:
    guest = guest_figures("Intel(R) Xeon(R) Processor", 2, instance=find_instance("m5.large"))
    assert guest.share == pytest.approx(2 / 96) and guest.host_embodied_kg == pytest.approx(1610.79)
    assert guest.power.architecture == "Skylake" and guest.sharpen is None
    assert guest.as_dict()["instance_type"] == "aws:m5.large"


def test_an_unknown_guest_takes_the_median_host_and_says_what_would_sharpen_it() -> None:
    guest = guest_figures("AMD EPYC", 2)
    assert guest.vcpus == 2 and guest.host_vcpus >= 16 and guest.instance is None
    assert "median host" in guest.host_rule and "WATTPRINT_INSTANCE_TYPE" in (guest.sharpen or "")
    sized = guest_figures("AMD EPYC", 2, host_vcpus=8)
    assert sized.share == 0.25 and sized.host_rule == "WATTPRINT_HOST_VCPUS setting"
    assert "WATTPRINT_HOST_VCPUS" not in (sized.sharpen or "")
    assert guest_figures("AMD EPYC", 16, host_vcpus=8).share == 1.0  # never more than the whole host
