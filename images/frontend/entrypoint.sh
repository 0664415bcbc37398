#!/bin/sh
# nginx with TLS on 443 when a certificate is mounted in /etc/cacheout/tls, else plain HTTP only.
set -e
if [ -r /etc/cacheout/tls/server.pem ] && [ -r /etc/cacheout/tls/server.key ]; then
    cp /etc/nginx/cacheout-tls.conf /etc/nginx/conf.d/cacheout-tls.conf
    echo "cacheout-frontend: TLS on port 443 with /etc/cacheout/tls/server.pem"
else
    rm -f /etc/nginx/conf.d/cacheout-tls.conf
    echo "cacheout-frontend: no /etc/cacheout/tls/server.pem and server.key: plain HTTP only"
fi
exec nginx -g 'daemon off;'
