#!/bin/sh
# Installs the Debian 12 packages gatehouse needs to build, test and benchmark.
# Idempotent and quiet when everything is present; called by the Makefile.
set -eu
BUILD="gcc clang make pkg-config libuv1-dev libssl-dev libnghttp2-dev libfyaml-dev
 libjansson-dev libpcre2-dev libhiredis-dev zlib1g-dev libbrotli-dev libargon2-dev libcrypt-dev"
TEST="libcmocka-dev python3 python3-pytest python3-pytest-xdist curl nghttp2-client openssl libclang-rt-14-dev
 python3-websockets python3-brotli python3-grpcio python3-grpc-tools python3-h2 redis-server redis-tools argon2 iproute2
 chromium fonts-dejavu-core prometheus etcd-server"
BENCH="nginx-light haproxy wrk valgrind strace"
case "${1:-test}" in
  build) PKGS="$BUILD" ;;
  test)  PKGS="$BUILD $TEST" ;;
  bench) PKGS="$BUILD $TEST $BENCH" ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# these packages start system services (nginx on :80, prometheus on :9090,
# etcd on :2379); the tests and the benchmark run their own on free ports
for svc in nginx prometheus etcd; do
  if echo "$missing" | grep -q "$svc"; then $SUDO service "$svc" stop >/dev/null 2>&1 || true; fi
done
