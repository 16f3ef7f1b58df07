#!/bin/sh
# Creates the `shoal` bucket on MinIO (run by the minio-init service).
set -e
mc alias set local http://minio:9000 minioadmin minioadmin
mc mb --ignore-existing local/shoal
echo "MinIO: bucket shoal ready"
