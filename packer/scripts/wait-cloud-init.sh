#!/bin/sh
# Wait for the base image's own cloud-init run to finish before provisioning
# (it holds apt's lock meanwhile). cloud-init >= 23.4 (Ubuntu 24.04) exits 2
# for "done, with recoverable errors": that is a usable machine, so the build
# goes on and the detail is printed; any other failure stops the build.
set -u
rc=0
cloud-init status --wait --long || rc=$?
case $rc in
  0) ;;
  2) echo "wait-cloud-init: done with recoverable errors (detail above); continuing" ;;
  *) echo "wait-cloud-init: cloud-init failed (exit $rc)" >&2; exit "$rc" ;;
esac
