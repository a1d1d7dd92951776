#!/usr/bin/env python3
"""The image's software bill of materials, CycloneDX 1.6 JSON, from what
packer/scripts/inventory.sh listed inside the build machine: every Debian
package with its version and architecture, and every wheel of the API's
wheelhouse with its SHA-256. Runs on the controller (Packer's shell-local
step, both sources), validated against CycloneDX's own schema; the image
carries it (/usr/share/supermega-api/sbom.cdx.json) and the build writes it
beside the image (build/image-sbom.cdx.json).

    sbom.py PACKAGES.txt WHEELS.txt OUT.json [--distro debian] [--revision REV]

PACKAGES.txt: name<TAB>version<TAB>arch per line (dpkg-query).
WHEELS.txt: sha256<TAB>file name per line (the wheelhouse's .whl files).
Prints the SBOM's SHA-256 (the image's manifest digest).
"""

import argparse
import hashlib
import re
import sys

from cyclonedx.model import HashAlgorithm, HashType
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-.+\.whl$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def debian_packages(path, distro):
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3:
                raise SystemExit(f"sbom.py: {path}: not name<TAB>version<TAB>arch: {line!r}")
            name, version, arch = fields
            yield Component(type=ComponentType.LIBRARY, name=name, version=version,
                            bom_ref=f"deb:{name}:{arch}",
                            purl=PackageURL("deb", distro, name, version, {"arch": arch}))


def wheels(path):
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            digest, filename = line.split()
            if not SHA256.match(digest):
                raise SystemExit(f"sbom.py: {filename}: {digest!r} is not a SHA-256 (hex)")
            match = WHEEL.match(filename)
            if not match:
                raise SystemExit(f"sbom.py: {filename!r} is not a wheel's file name")
            name = match["name"].replace("_", "-").lower()
            yield Component(type=ComponentType.LIBRARY, name=name, version=match["version"],
                            bom_ref=f"pypi:{name}",
                            purl=PackageURL("pypi", None, name, match["version"]),
                            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest)])


def build(packages, wheelhouse, distro="debian", revision="unknown"):
    bom = Bom()
    image = Component(type=ComponentType.OPERATING_SYSTEM, name="supermega-api-image",
                      version=revision, bom_ref="image")
    bom.metadata.component = image
    components = [*debian_packages(packages, distro), *wheels(wheelhouse)]
    for component in components:
        bom.components.add(component)
    bom.register_dependency(image, components)     # the image holds every one
    text = JsonV1Dot6(bom).output_as_string(indent=1)
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if errors:
        raise SystemExit(f"sbom.py: the SBOM is not valid CycloneDX 1.6: {errors}")
    return text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("packages")
    p.add_argument("wheels")
    p.add_argument("out")
    p.add_argument("--distro", default="debian")
    p.add_argument("--revision", default="unknown")
    args = p.parse_args(argv)
    text = build(args.packages, args.wheels, args.distro, args.revision)
    with open(args.out, "w") as f:
        f.write(text)
    print(hashlib.sha256(text.encode()).hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main())
