#!/usr/bin/env python3
"""Build the API's release artifact on the controller.

The artifact is one deterministic tarball holding everything the host needs
to install the release offline:

    app/*.py             the code
    requirements.lock    the hash-locked dependency set
    wheelhouse/*.whl     every locked dependency as a wheel for the target's
                         Python and CPU, downloaded here and checked against
                         the lock file's hashes (pip --require-hashes)

Same inputs, same bytes: files are sorted, owned by 0:0 and dated at the
epoch, so an unchanged release is never re-uploaded. The release id, unless
given, is derived from the same inputs (the app's files and the lock file):
the same code and dependencies are always the same release. Prints one JSON
line: {"release": ID, "artifact": PATH, "built": true|false}.

    build_release.py --source DIR --lock FILE --python 3.11 --arch x86_64 --out DIR [--release ID]
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile


def download_wheels(lock, python, arch, dest):
    platforms = [f"manylinux2014_{arch}", f"manylinux_2_17_{arch}", f"manylinux_2_28_{arch}",
                 f"linux_{arch}"]
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--require-hashes", "--no-deps", "--only-binary=:all:", "--implementation=cp",
            f"--python-version={python}", "--dest", dest, "-r", lock]
    for platform in platforms:
        argv.append(f"--platform={platform}")
    subprocess.run(argv, check=True)


def release_id(app_dir, app_files, lock):
    """12 hex digits of SHA-256 over each app file's name and bytes, then the lock file."""
    digest = hashlib.sha256()
    for name in app_files:
        with open(os.path.join(app_dir, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read() + b"\0")
    with open(lock, "rb") as f:
        digest.update(b"requirements.lock\0" + f.read())
    return digest.hexdigest()[:12]


def add(tar, path, arcname):
    info = tar.gettarinfo(path, arcname)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    info.mode = 0o755 if info.isdir() else 0o644
    if info.isfile():
        with open(path, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", required=True, help="directory holding app/")
    p.add_argument("--lock", required=True)
    p.add_argument("--python", required=True, help="target interpreter, e.g. 3.11")
    p.add_argument("--arch", required=True, help="target CPU, e.g. x86_64, aarch64")
    p.add_argument("--out", required=True)
    p.add_argument("--release", default="", help="default: derived from the app and lock file")
    args = p.parse_args()

    app_dir = os.path.join(args.source, "app")
    app_files = sorted(f for f in os.listdir(app_dir) if f.endswith(".py"))
    if not app_files:
        raise SystemExit(f"build_release: no app/*.py under {args.source}")
    release = args.release or release_id(app_dir, app_files, args.lock)

    tag = f"cp{args.python.replace('.', '')}-{args.arch}"
    os.makedirs(args.out, exist_ok=True)
    artifact = os.path.join(args.out, f"release-{release}-{tag}.tar.gz")
    result = {"release": release, "artifact": artifact, "built": False}
    if os.path.exists(artifact):
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(dir=args.out) as work:
        wheels = os.path.join(work, "wheelhouse")
        download_wheels(args.lock, args.python, args.arch, wheels)
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            add(tar, app_dir, "app")
            for name in app_files:
                add(tar, os.path.join(app_dir, name), f"app/{name}")
            add(tar, args.lock, "requirements.lock")
            add(tar, wheels, "wheelhouse")
            for name in sorted(os.listdir(wheels)):
                add(tar, os.path.join(wheels, name), f"wheelhouse/{name}")
        partial = artifact + ".partial"
        with open(partial, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
            gz.write(raw.getvalue())
        os.replace(partial, artifact)
    print(json.dumps({**result, "built": True}))


if __name__ == "__main__":
    main()
