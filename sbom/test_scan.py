"""Unit tests of the SBOM scanner's parsing, on a small root filesystem made in a temp folder."""

import base64
import json
import os
from datetime import datetime, timezone

import scan

DPKG = """Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u4
Description: GNU C Library
 continued line: not a field

Package: removed
Status: deinstall ok config-files
Version: 1.0
"""

APK = "C:Q1abc=\nP:musl\nV:1.2.5-r0\n\nP:busybox\nV:1.36.1-r29\n"


def test_dpkg_lists_installed_packages_only():
    assert scan.parse_dpkg_status(DPKG) == [
        {"ecosystem": "deb", "name": "libc6", "version": "2.36-9+deb12u4", "arch": "amd64"}]


def test_apk_database():
    names = [(p["name"], p["version"]) for p in scan.parse_apk_installed(APK)]
    assert names == [("musl", "1.2.5-r0"), ("busybox", "1.36.1-r29")]


def test_a_root_filesystem_of_three_ecosystems(tmp_path):
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text(DPKG)
    info = tmp_path / "opt/deps/fastapi-0.115.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fastapi\nVersion: 0.115.0\n\nName: not-me\n")
    pkg = tmp_path / "app/node_modules/@next/env"
    pkg.mkdir(parents=True)
    (pkg / "package.json").write_text(json.dumps({"name": "@next/env", "version": "16.0.0"}))
    nested = pkg / "lib"
    nested.mkdir()
    (nested / "package.json").write_text(json.dumps({"name": "not-a-package", "version": "1"}))
    lock = {"packages": {"node_modules/@next/env": {"version": "16.0.0", "integrity": "sha512-AAAA"}}}
    (tmp_path / "app/node_modules/.package-lock.json").write_text(json.dumps(lock))
    found = scan.scan(tmp_path)
    by = {(p["ecosystem"], p["name"]): p for p in found}
    assert by[("deb", "libc6")]["version"] == "2.36-9+deb12u4"
    assert by[("pypi", "fastapi")]["version"] == "0.115.0"
    assert by[("npm", "@next/env")]["integrity"] == "sha512-AAAA"
    assert ("npm", "not-a-package") not in by
    doc = scan.spdx(found)
    purls = [r["referenceLocator"] for p in doc["packages"] for r in p.get("externalRefs", [])]
    assert "pkg:npm/%40next/env@16.0.0" in purls and "pkg:pypi/fastapi@0.115.0" in purls
    env = next(p for p in doc["packages"] if p["name"] == "@next/env")
    assert env["checksums"] == [{"algorithm": "SHA512", "checksumValue": "000000"}]


def test_the_protocol_writes_an_in_toto_statement(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("BUILDKIT_SCAN_SOURCE", str(tmp_path))
    monkeypatch.setenv("BUILDKIT_SCAN_DESTINATION", str(out))
    assert scan.main(drop=lambda: None) == 0
    st = json.loads((out / "sbom.spdx.json").read_text())
    assert st["predicateType"] == "https://spdx.dev/Document"
    assert st["predicate"]["spdxVersion"] == "SPDX-2.3"
    monkeypatch.delenv("BUILDKIT_SCAN_SOURCE")
    assert scan.main(drop=lambda: None) == 2


def test_packages_come_out_in_one_order(tmp_path):
    for name in ("b", "a"):
        info = tmp_path / f"site/{name}-1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Name: {name}\nVersion: 1\n")
    assert [p["name"] for p in scan.scan(tmp_path)] == ["a", "b"]


def test_integrity_from_the_build_context_lock_when_the_image_has_none(tmp_path):
    image = tmp_path / "image/app/node_modules/next"
    image.mkdir(parents=True)
    (image / "package.json").write_text(json.dumps({"name": "next", "version": "16.0.0"}))
    context = tmp_path / "extras/sbom-context"
    context.mkdir(parents=True)
    lock = {"packages": {"node_modules/next": {"version": "16.0.0", "integrity": "sha512-AAAA"},
                         "node_modules/eslint": {"version": "9.0.0", "integrity": "sha512-BBBB"}}}
    (context / "package-lock.json").write_text(json.dumps(lock))
    found = scan.scan(tmp_path / "image", tmp_path / "extras")
    assert [(p["name"], p.get("integrity")) for p in found] == [("next", "sha512-AAAA")]


def elf(machine):
    """The first bytes of a little-endian ELF file for `machine`."""
    return b"\x7fELF\x02\x01\x01" + bytes(11) + machine.to_bytes(2, "little") + bytes(44)


def test_the_platform_comes_from_the_package_database_else_the_shell(tmp_path):
    assert scan.platform_of(tmp_path, scan.parse_dpkg_status(DPKG)) == "linux/amd64"
    (tmp_path / "etc/apk").mkdir(parents=True)
    (tmp_path / "etc/apk/arch").write_text("aarch64\n")
    assert scan.platform_of(tmp_path, []) == "linux/arm64"
    other = tmp_path / "busybox-only"
    (other / "bin").mkdir(parents=True)
    (other / "bin/busybox").write_bytes(elf(183))
    # An absolute link, as images have them: followed inside the image, never on the host.
    (other / "bin/sh").symlink_to("/bin/busybox")
    assert scan.platform_of(other, []) == "linux/arm64"
    (other / "bin/busybox").write_bytes(elf(62))
    assert scan.platform_of(other, []) == "linux/amd64"
    assert scan.platform_of(tmp_path / "empty", []) == "unknown"


def test_the_files_digest_follows_content_and_names_not_times(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a/f").write_text("one")
    (tmp_path / "l").symlink_to("a/f")
    first = scan.files_digest(tmp_path)
    os.utime(tmp_path / "a/f", (0, 0))
    assert scan.files_digest(tmp_path) == first
    (tmp_path / "a/f").write_text("two")
    assert scan.files_digest(tmp_path) != first
    (tmp_path / "a/f").write_text("one")
    (tmp_path / "a/f").rename(tmp_path / "a/g")
    assert scan.files_digest(tmp_path) != first


def test_build_dates_are_written_as_spdx_wants_them():
    assert scan.spdx_time("2026-01-02T03:04:05Z") == "2026-01-02T03:04:05Z"
    assert scan.spdx_time("2026-01-02T04:04:05.25+01:00") == "2026-01-02T03:04:05Z"
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    for missing in (None, "", "unknown", "2026-01-02T03:04:05"):
        assert scan.spdx_time(missing, now) == "2030-01-01T00:00:00Z", missing


def document(tmp_path):
    found = scan.scan(tmp_path)
    integrity = "sha512-" + base64.b64encode(bytes(range(64))).decode()
    return scan.spdx(found + [{"ecosystem": "npm", "name": "next", "version": "16.0.0", "integrity": integrity}],
                     "contextcleanse-frontend", "linux/arm64", "ab" * 32, "2026-01-02T03:04:05Z")


def test_the_document_describes_the_image_which_contains_each_package(tmp_path):
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text(DPKG)
    doc = document(tmp_path)
    root = doc["packages"][0]
    assert (root["SPDXID"], root["name"], root["primaryPackagePurpose"]) == (
        "SPDXRef-Image", "contextcleanse-frontend", "CONTAINER")
    rel = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in doc["relationships"]}
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image") in rel
    for p in doc["packages"][1:]:
        assert ("SPDXRef-Image", "CONTAINS", p["SPDXID"]) in rel
    assert doc["documentNamespace"] == (
        "https://contextcleanse.invalid/sbom/contextcleanse-frontend/linux/arm64/sha256-" + "ab" * 32)
    assert doc["creationInfo"]["created"] == "2026-01-02T03:04:05Z"


def test_a_maintained_spdx_validator_accepts_the_document(tmp_path):
    # spdx-tools, which `cargo xtask test` installs into its virtualenv.
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text(DPKG)
    path = tmp_path / "doc.spdx.json"
    path.write_text(json.dumps(document(tmp_path)))
    messages = validate_full_spdx_document(parse_file(str(path)))
    assert messages == [], [m.validation_message for m in messages]
    # What the generator wrote before: no relationship, so no DESCRIBES.
    bare = document(tmp_path)
    del bare["relationships"]
    path.write_text(json.dumps(bare))
    messages = validate_full_spdx_document(parse_file(str(path)))
    assert any("DESCRIBES" in m.validation_message for m in messages)


def test_the_protocol_passes_the_image_name_and_build_date(tmp_path, monkeypatch):
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text(DPKG)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("BUILDKIT_SCAN_SOURCE", str(tmp_path / "var"))
    monkeypatch.setenv("BUILDKIT_SCAN_DESTINATION", str(out))
    monkeypatch.setenv("BUILDKIT_SCAN_image", "contextcleanse-backend")
    monkeypatch.setenv("BUILDKIT_SCAN_build_date", "2026-01-02T03:04:05Z")
    assert scan.main(drop=lambda: None) == 0
    doc = json.loads((out / "sbom.spdx.json").read_text())["predicate"]
    assert doc["creationInfo"]["created"] == "2026-01-02T03:04:05Z"
    assert doc["packages"][0]["name"] == "contextcleanse-backend"
    assert doc["documentNamespace"].startswith("https://contextcleanse.invalid/sbom/contextcleanse-backend/")
