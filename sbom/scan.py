"""ContextCleanse's SBOM generator: BuildKit runs it with the image's root filesystem.

It follows BuildKit's generator protocol: the root filesystem is mounted at
$BUILDKIT_SCAN_SOURCE and one in-toto statement per file is written to
$BUILDKIT_SCAN_DESTINATION, holding an SPDX 2.3 document; BuildKit fills in the subject.
It lists OS packages (dpkg status, apk's installed database), Python distributions
(*.dist-info) and npm packages (node_modules, with the integrity hashes a lock file records),
each contained in one root package for the image, which the document describes.
The xtask passes the image's name and the build date as attestation parameters, which
BuildKit 0.16 and later hand over as $BUILDKIT_SCAN_image and $BUILDKIT_SCAN_build_date.
Standard library only, so the image needs nothing beyond Python.
"""

import base64
import hashlib
import json
import os
import re
import sys
from collections import Counter
from datetime import datetime, timezone
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


# Where each package database names its architecture, and the ELF machine numbers of the
# platforms images are built for, as OCI platforms.
DEB_ARCH = {"amd64": "linux/amd64", "arm64": "linux/arm64", "armhf": "linux/arm/v7", "i386": "linux/386",
            "ppc64el": "linux/ppc64le", "s390x": "linux/s390x", "riscv64": "linux/riscv64"}
APK_ARCH = {"x86_64": "linux/amd64", "aarch64": "linux/arm64", "armv7": "linux/arm/v7", "x86": "linux/386",
            "ppc64le": "linux/ppc64le", "s390x": "linux/s390x", "riscv64": "linux/riscv64"}
ELF_MACHINE = {62: "linux/amd64", 183: "linux/arm64", 40: "linux/arm", 3: "linux/386", 21: "linux/ppc64le",
               22: "linux/s390x", 243: "linux/riscv64"}


def inside(root, path):
    """`path` under `root` with its symbolic links followed inside `root`, never out of it."""
    for _ in range(40):
        if not path.is_symlink():
            return path
        target = os.readlink(path)
        path = root / target.lstrip("/") if target.startswith("/") else path.parent / target
    return path


def elf_platform(path):
    """The platform an ELF file was built for, from its header's machine field."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "little" if head[5] == 1 else "big"
    return ELF_MACHINE.get(int.from_bytes(head[18:20], order))


def platform_of(root, packages):
    """The image's platform: its package database's architecture, else that of its shell."""
    root = Path(root)
    archs = Counter(DEB_ARCH.get(p.get("arch", "")) for p in packages if p["ecosystem"] == "deb")
    archs.pop(None, None)
    if archs:
        return archs.most_common(1)[0][0]
    apk = root / "etc/apk/arch"
    if apk.is_file() and apk.read_text().strip() in APK_ARCH:
        return APK_ARCH[apk.read_text().strip()]
    for candidate in ("bin/sh", "usr/bin/env", "bin/busybox", "usr/local/bin/node", "usr/local/bin/python3"):
        found = elf_platform(inside(root, root / candidate))
        if found:
            return found
    return "unknown"


def files_digest(root):
    """sha256 over the image's files (each path, kind and content; no times, owners or modes):
    the same files give the same digest. The SBOM is made before BuildKit exports the image, so
    the image's manifest digest does not exist yet; this one names what was scanned."""
    root = Path(root)
    total = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel.split(os.sep)[0] in ("proc", "sys", "dev"):
            dirnames[:] = []
            continue
        dirnames.sort()
        total.update(f"d {rel}\0".encode(errors="surrogateescape"))
        for name in sorted(filenames + [d for d in dirnames if Path(dirpath, d).is_symlink()]):
            path = Path(dirpath, name)
            entry = os.path.join(rel, name)
            if path.is_symlink():
                total.update(f"l {entry} {os.readlink(path)}\0".encode(errors="surrogateescape"))
                continue
            content = hashlib.sha256()
            try:
                with open(path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        content.update(block)
            except OSError:
                content.update(b"unreadable")
            total.update(f"f {entry} {content.hexdigest()}\0".encode(errors="surrogateescape"))
    return total.hexdigest()


def spdx_time(value, now=None):
    """An RFC 3339 time as SPDX writes it (UTC, whole seconds, `Z`); `now` when it is missing
    or unreadable (BuildKit before 0.16 passes no build date)."""
    when = None
    if value:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            when = None
    if when is None or when.tzinfo is None:
        when = now or datetime.now(timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def spdx(packages, image="image", platform="unknown", digest="", created=""):
    """An SPDX 2.3 document: a root package for the image, which the document DESCRIBES and which
    CONTAINS every package found; npm integrity (sha512-BASE64) becomes a checksum. Its namespace
    is unique per image and platform: it carries both, and the digest of the files scanned."""
    root_id = "SPDXRef-Image"
    pkgs = [{
        "SPDXID": root_id,
        "name": image,
        "downloadLocation": "NOASSERTION",
        "primaryPackagePurpose": "CONTAINER",
        "comment": f"The {platform} image; sha256 of its files: {digest}",
    }]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": root_id}]
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
            digest_hex = base64.b64decode(p["integrity"][7:]).hex()
            entry["checksums"] = [{"algorithm": "SHA512", "checksumValue": digest_hex}]
        pkgs.append(entry)
        relationships.append({"spdxElementId": root_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": entry["SPDXID"]})
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{image} {platform}",
        "documentNamespace": f"https://contextcleanse.invalid/sbom/{image}/{platform}/sha256-{digest}",
        "creationInfo": {"creators": ["Tool: contextcleanse-sbom-scan"], "created": created or spdx_time(None)},
        "packages": pkgs,
        "relationships": relationships,
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
        packages = scan(src, os.environ.get("BUILDKIT_SCAN_SOURCE_EXTRAS"))
        image = re.sub(r"[^A-Za-z0-9._-]", "-", os.environ.get("BUILDKIT_SCAN_image", "")) or "image"
        doc = spdx(packages, image, platform_of(src, packages), files_digest(src),
                   spdx_time(os.environ.get("BUILDKIT_SCAN_build_date")))
        out.write(json.dumps(statement(doc), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
