"""Unit tests of the SBOM scanner's parsing, on a small root filesystem made in a temp folder."""

import json

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
    purls = [r["referenceLocator"] for p in doc["packages"] for r in p["externalRefs"]]
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
