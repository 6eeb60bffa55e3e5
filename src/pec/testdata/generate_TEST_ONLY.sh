#!/usr/bin/env bash
# How the TEST-ONLY certificates and keys in this folder were made (once, with
# OpenSSL 3.0). Not run by the build or the tests. Running it again makes NEW
# keys: the committed files then all have to be replaced together.
#   usage: generate_TEST_ONLY.sh OUTDIR
# The keys are test keys: never use them for anything else.
set -euo pipefail
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

cat > ext.cnf <<'CNF'
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[signer_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = emailProtection
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = email:posta-certificata@pec.sim.invalid
CNF
mkdir -p db/new
: > db/index.txt
openssl rand -hex 8 > db/serial
cat > ca.cnf <<CNF
[ca]
default_ca = test
[test]
dir = $work/db
database = \$dir/index.txt
new_certs_dir = \$dir/new
serial = \$dir/serial
certificate = $work/ca.crt
private_key = $work/ca.key
default_md = sha256
policy = pol
copy_extensions = none
unique_subject = no
[pol]
organizationName = supplied
commonName = supplied
CNF
cat ext.cnf >> ca.cnf

key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key" 2>/dev/null; }
csr() { openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"; }
# issue NAME EXTENSIONS START END [-selfsign]
issue() {
  openssl ca -batch -config ca.cnf -extensions "$2" -startdate "$3" -enddate "$4" -preserveDN -notext ${5:-} \
    -in "$1.csr" -out "$1.crt" 2>/dev/null
}

# Trusted test CA, backdated to 2016 so that the expired signer's chain is
# consistent inside its own validity period; ends ~10 years after creation.
key ca; csr ca "/O=pecgate test/CN=pecgate TEST ONLY CA"
issue ca ca_ext 20160101000000Z 20361120000000Z "-selfsign -keyfile ca.key"
# The simulated provider's signer.
key signer; csr signer "/O=pecgate test/CN=Gestore PEC simulato (pecgate sim)"
issue signer signer_ext 20160101000000Z 20361120000000Z
# A signer that expired on 2020-01-01.
key expired_signer; csr expired_signer "/O=pecgate test/CN=Gestore PEC scaduto (pecgate test)"
issue expired_signer signer_ext 20180101000000Z 20200101000000Z
# An unrelated CA and its signer (10 years from now), for the untrusted test.
key other_ca
openssl req -new -x509 -key other_ca.key -sha256 -days 3650 -subj "/O=pecgate test other/CN=pecgate TEST ONLY unrelated CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out other_ca.crt
key other_signer; csr other_signer "/O=pecgate test other/CN=Gestore PEC non fidato (pecgate test)"
openssl x509 -req -in other_signer.csr -CA other_ca.crt -CAkey other_ca.key -set_serial "0x$(openssl rand -hex 8)" -sha256 -days 3650 \
  -extfile ext.cnf -extensions signer_ext -out other_signer.crt 2>/dev/null

for n in ca signer expired_signer other_ca other_signer; do cp "$n.crt" "$out/TEST_ONLY_$n.crt.pem"; done
for n in signer expired_signer other_signer; do cp "$n.key" "$out/TEST_ONLY_$n.key.pem"; done

# openssl-produced fixtures (interoperability), signed with the new signer.
printf 'Content-Type: text/plain; charset="UTF-8"\r\n\r\nMessaggio firmato da openssl smime -sign\r\n.riga con punto\r\n' > content.txt
openssl smime -sign -signer signer.crt -inkey signer.key -md sha256 -binary -in content.txt \
  -out "$out/TEST_ONLY_openssl_smime_sign_sha256_binary.eml"
openssl smime -sign -signer signer.crt -inkey signer.key -md sha1 -in content.txt -out "$out/TEST_ONLY_openssl_smime_sign_sha1.eml"
echo "written to $out"
