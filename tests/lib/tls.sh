# Sourced by suites that need TLS certificates: a throw-away certificate authority made with the
# openssl command (package openssl), valid for this run only.
#
# tls_make DIR [NAME...]: writes into DIR
#   ca.pem                       the test CA (trust it with --cacert / TLS_CA_FILE)
#   server.pem, server.key       a server certificate signed by it for localhost, 127.0.0.1, ::1
#                                and each NAME (host names, e.g. compose service names)
#   other-ca.pem                 an unrelated CA: verifying server.pem against it must fail
#   expired.pem, expired.key     a certificate for the same names signed by ca.pem that expired
#                                in 2020
#   otherhost.pem, otherhost.key a valid certificate signed by ca.pem for another host name only
#                                (otherhost.invalid): refused for localhost
# Returns non-zero (and prints openssl's complaint) when a step fails.
tls_make() {
    local dir=$1
    shift
    local san="DNS:localhost,IP:127.0.0.1,IP:::1" n
    for n in "$@"; do san="$san,DNS:$n"; done
    mkdir -p "$dir/ca-db" || return 1
    : >"$dir/ca-db/index.txt"
    echo 1000 >"$dir/ca-db/serial"
    cat >"$dir/ca.cnf" <<CNF
[ca]
default_ca = test_ca
[test_ca]
dir = $dir/ca-db
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
[server_ext]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $san
[otherhost_ext]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:otherhost.invalid
CNF
    (
        set -e
        cd "$dir"
        for ca in ca other-ca; do
            openssl req -x509 -newkey rsa:2048 -nodes -keyout "$ca.key" -out "$ca.pem" \
                -days 2 -subj "/CN=CacheOut test $ca $$" \
                -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign
        done
        for c in server expired otherhost; do
            openssl req -newkey rsa:2048 -nodes -keyout "$c.key" -out "$c.csr" -subj "/CN=localhost"
        done
        openssl ca -batch -config ca.cnf -extensions server_ext -days 2 -in server.csr \
            -out server.pem
        openssl ca -batch -config ca.cnf -extensions server_ext -startdate 20200101000000Z \
            -enddate 20200201000000Z -in expired.csr -out expired.pem
        openssl ca -batch -config ca.cnf -extensions otherhost_ext -days 2 -in otherhost.csr \
            -out otherhost.pem
    ) >"$dir/openssl.log" 2>&1 || { tail -20 "$dir/openssl.log"; return 1; }
}
