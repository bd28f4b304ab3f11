"""ContextCleanse's SBOM generator: BuildKit runs it with the image's root filesystem.

It follows BuildKit's generator protocol: the root filesystem is mounted at
$BUILDKIT_SCAN_SOURCE and one in-toto statement per file is written to
$BUILDKIT_SCAN_DESTINATION, holding an SPDX 2.3 document; BuildKit fills in the subject.
It lists OS packages (dpkg status, apk's installed database), Python distributions
(*.dist-info) and npm packages (node_modules, with the integrity hashes a lock file records).
Standard library only, so the image needs nothing beyond Python.
"""

import json
import os
import re
import sys
from pathlib import Path


def parse_dpkg_status(text):
    """Installed packages from /var/lib/dpkg/status: (name, version, arch)."""
    out = []
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if "Package" in fields and "install ok installed" in fields.get("Status", ""):
            out.append({"ecosystem": "deb", "name": fields["Package"], "version": fields.get("Version", ""),
                        "arch": fields.get("Architecture", "")})
    return out


def parse_apk_installed(text):
    """Installed packages from /lib/apk/db/installed (P: name, V: version, C: checksum)."""
    out = []
    for block in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if len(line) > 2 and line[1] == ":")
        if "P" in fields:
            out.append({"ecosystem": "apk", "name": fields["P"], "version": fields.get("V", ""),
                        "checksum": fields.get("C", "")})
    return out


def parse_dist_info_metadata(text):
    """Name and version from a dist-info METADATA file (the headers before the first blank line)."""
    name = version = None
    for line in text.splitlines():
        if not line:
            break
        if line.startswith("Name:"):
            name = line[5:].strip()
        elif line.startswith("Version:"):
            version = line[8:].strip()
    return name, version


def lock_integrity(lock):
    """npm lock file (v2/v3 `packages`): {(name, version): integrity}."""
    out = {}
    for path, entry in (lock.get("packages") or {}).items():
        if "node_modules/" not in path or "integrity" not in entry:
            continue
        name = entry.get("name") or path.rsplit("node_modules/", 1)[1]
        out[(name, entry.get("version", ""))] = entry["integrity"]
    return out


def context_locks(extras):
    """Integrity of every package the npm lock files in the scanned build context record.

    BuildKit mounts the files of the build context the build reads under
    $BUILDKIT_SCAN_SOURCE_EXTRAS/sbom-context when the Dockerfile declares the global argument
    BUILDKIT_SBOM_SCAN_CONTEXT=true (a build argument alone is not enough: checked with
    BuildKit 0.25). An image often keeps no lock file (Next.js's
    standalone output has none); the context's lock is the one its packages were installed from.
    Its packages are not listed themselves: only what is in the image is.
    """
    integrity = {}
    for dirpath, dirnames, filenames in os.walk(extras):
        dirnames[:] = sorted(d for d in dirnames if d != "node_modules")
        if "package-lock.json" in filenames:
            try:
                integrity.update(lock_integrity(json.loads(Path(dirpath, "package-lock.json").read_text())))
            except (ValueError, OSError):
                pass
    return integrity


def scan(root, extras=None):
    root = Path(root)
    found = []
    status = root / "var/lib/dpkg/status"
    if status.is_file():
        found += parse_dpkg_status(status.read_text(errors="replace"))
    apk = root / "lib/apk/db/installed"
    if apk.is_file():
        found += parse_apk_installed(apk.read_text(errors="replace"))
    integrity = context_locks(extras) if extras else {}
    npm = []
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        # Never follow into the kernel's or the engine's pseudo-filesystems.
        rel = os.path.relpath(dirpath, root)
        if rel.split(os.sep)[0] in ("proc", "sys", "dev"):
            dirnames[:] = []
            continue
        base = os.path.basename(dirpath)
        if base.endswith(".dist-info") and "METADATA" in filenames:
            name, version = parse_dist_info_metadata(Path(dirpath, "METADATA").read_text(errors="replace"))
            if name and (name, version) not in seen:
                seen.add((name, version))
                found.append({"ecosystem": "pypi", "name": name, "version": version or ""})
        for lock in ("package-lock.json", ".package-lock.json"):
            if lock in filenames:
                try:
                    integrity.update(lock_integrity(json.loads(Path(dirpath, lock).read_text())))
                except (ValueError, OSError):
                    pass
        if "package.json" in filenames and "node_modules" in Path(rel).parts:
            parent = Path(rel).parent
            # A package's own manifest: node_modules/NAME or node_modules/@scope/NAME.
            if parent.name == "node_modules" or parent.parent.name == "node_modules":
                try:
                    manifest = json.loads(Path(dirpath, "package.json").read_text())
                except (ValueError, OSError):
                    continue
                name, version = manifest.get("name"), manifest.get("version")
                if name and version and ("npm", name, version) not in seen:
                    seen.add(("npm", name, version))
                    npm.append({"ecosystem": "npm", "name": name, "version": version})
    for p in npm:
        if (p["name"], p["version"]) in integrity:
            p["integrity"] = integrity[(p["name"], p["version"])]
    # The walk's order is the filesystem's: sort, so one image gives one SBOM (and one digest).
    return sorted(found + npm, key=lambda p: (p["ecosystem"], p["name"], p["version"]))


def purl(p):
    if p["ecosystem"] == "deb":
        return f"pkg:deb/debian/{p['name']}@{p['version']}" + (f"?arch={p['arch']}" if p.get("arch") else "")
    if p["ecosystem"] == "apk":
        return f"pkg:apk/alpine/{p['name']}@{p['version']}"
    if p["ecosystem"] == "pypi":
        return f"pkg:pypi/{re.sub(r'[-_.]+', '-', p['name']).lower()}@{p['version']}"
    name = p["name"].replace("@", "%40")
    return f"pkg:npm/{name}@{p['version']}"


def spdx(packages, name="image"):
    """An SPDX 2.3 document; npm integrity (sha512-BASE64) becomes a checksum."""
    pkgs = []
    for i, p in enumerate(packages):
        entry = {
            "SPDXID": f"SPDXRef-Package-{p['ecosystem']}-{i}",
            "name": p["name"],
            "versionInfo": p["version"],
            "downloadLocation": "NOASSERTION",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": purl(p)}],
        }
        if p.get("integrity", "").startswith("sha512-"):
            import base64
            digest = base64.b64decode(p["integrity"][7:]).hex()
            entry["checksums"] = [{"algorithm": "SHA512", "checksumValue": digest}]
        pkgs.append(entry)
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"https://contextcleanse.invalid/sbom/{name}",
        "creationInfo": {"creators": ["Tool: contextcleanse-sbom-scan"], "created": "1970-01-01T00:00:00Z"},
        "packages": pkgs,
    }


def statement(doc):
    return {"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://spdx.dev/Document",
            "predicate": doc}


# The user the image declares; BuildKit's scan step does not apply it (see drop_privileges).
UNPRIVILEGED = 65532


def drop_privileges():
    """Becomes UNPRIVILEGED when started as root.

    BuildKit runs the generator as root whatever the image's USER says (its scan step sets no
    user; checked with BuildKit 0.25 and 0.13) and mounts the output folder owned by root, 0755.
    So main() opens its output first and then gives root up before reading a byte of the image,
    which is input it should not trust. Files of the image that only root may read are skipped.
    """
    if os.geteuid() != 0:
        return
    os.setgroups([])
    os.setgid(UNPRIVILEGED)
    os.setuid(UNPRIVILEGED)


def main(drop=drop_privileges):
    src = os.environ.get("BUILDKIT_SCAN_SOURCE")
    dest = os.environ.get("BUILDKIT_SCAN_DESTINATION")
    if not src or not dest:
        print("scan: BUILDKIT_SCAN_SOURCE and BUILDKIT_SCAN_DESTINATION must be set (BuildKit sets both)",
              file=sys.stderr)
        return 2
    with open(Path(dest, "sbom.spdx.json"), "w", encoding="utf-8") as out:
        drop()
        doc = spdx(scan(src, os.environ.get("BUILDKIT_SCAN_SOURCE_EXTRAS")), "sbom")
        out.write(json.dumps(statement(doc), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
