#!/bin/sh
# nginx with TLS on 443 when a certificate is mounted in /etc/cacheout/tls, else plain HTTP only.
set -e
# The DNS of the container network (Docker's 127.0.0.11, Podman's gateway) for the coordinators'
# addresses (locations.conf).
ns=$(awk '$1 == "nameserver" { print $2; exit }' /etc/resolv.conf)
case $ns in *:*) ns="[$ns]" ;; esac
echo "resolver ${ns:-127.0.0.11} valid=5s ipv6=off;" >/etc/nginx/conf.d/00-resolver.conf
echo "cacheout-frontend: coordinators looked up through ${ns:-127.0.0.11}"
if [ -r /etc/cacheout/tls/server.pem ] && [ -r /etc/cacheout/tls/server.key ]; then
    cp /etc/nginx/cacheout-tls.conf /etc/nginx/conf.d/cacheout-tls.conf
    echo "cacheout-frontend: TLS on port 443 with /etc/cacheout/tls/server.pem"
else
    rm -f /etc/nginx/conf.d/cacheout-tls.conf
    echo "cacheout-frontend: no /etc/cacheout/tls/server.pem and server.key: plain HTTP only"
fi
exec nginx -g 'daemon off;'
