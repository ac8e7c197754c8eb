#!/usr/bin/env bash
# Regenerates the TEST-ONLY TLS identities (never use these keys for anything real):
#   ca.pem             a throwaway certificate authority
#   server-cert.pem    CN=localhost, SAN DNS:localhost + IP:127.0.0.1, signed by the CA
#   server-key.pem     its key
#   other-ca.pem       an unrelated self-signed CA (for "bad certificate" tests), other-key.pem its key
set -euo pipefail
cd "$(dirname "$0")"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
    -subj "/CN=asynctrace test CA" -keyout "$tmp/ca-key.pem" -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout server-key.pem -out "$tmp/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > "$tmp/ext.cnf"
openssl x509 -req -in "$tmp/server.csr" -CA ca.pem -CAkey "$tmp/ca-key.pem" -CAserial "$tmp/ca.srl" -CAcreateserial \
    -days 36500 -extfile "$tmp/ext.cnf" -out server-cert.pem 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
    -subj "/CN=some other CA" -keyout other-key.pem -out other-ca.pem 2>/dev/null
