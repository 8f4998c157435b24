# Stand-in for the unprivileged nginx image, from Debian's packages. What ui/Dockerfile relies on:
# nginx running as the non-root user nginx (uid/gid 101) listening on 8080; /etc/nginx/conf.d and
# /var/cache/nginx writable by it, pid and temp files in /tmp; envsubst (gettext-base); at start,
# /docker-entrypoint.d/ scripts, among them the rendering of /etc/nginx/templates/*.template into
# /etc/nginx/conf.d with the environment's variables; logs on stdout/stderr; wget for health checks.
ARG DEBIAN_IMAGE=digits-base-debian:offline
FROM ${DEBIAN_IMAGE}

COPY build-host-ca-bundle.crt /usr/local/share/ca-certificates/build-host-ca-bundle.crt
COPY build-host-ca-bundle.crt /etc/ssl/certs/ca-certificates.crt

# Debian's mirror serves only the current point release: pinning versions here would break it.
# hadolint ignore=DL3008
RUN groupadd --system --gid 101 nginx \
    && useradd --system --uid 101 --gid nginx --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin nginx \
    && apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates nginx gettext-base wget \
    && rm -rf /var/lib/apt/lists/* \
    # Debian's default site listens on 80 as root; the image's own default.conf replaces it.
    && rm -rf /etc/nginx/sites-enabled /etc/nginx/sites-available /var/www/html \
    && mkdir -p /etc/nginx/conf.d /etc/nginx/templates /docker-entrypoint.d \
        /usr/share/nginx/html /var/cache/nginx \
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log

COPY nginx.conf /etc/nginx/nginx.conf
COPY default.conf /etc/nginx/conf.d/default.conf
COPY index.html /usr/share/nginx/html/index.html
COPY docker-entrypoint.sh /docker-entrypoint.sh
COPY 20-render-templates.sh /docker-entrypoint.d/20-render-templates.sh

# As in the unprivileged image: the nginx user (group root too) owns what nginx writes at start.
RUN chmod 0755 /docker-entrypoint.sh /docker-entrypoint.d/20-render-templates.sh \
    && chown -R 101:0 /etc/nginx /var/cache/nginx /var/lib/nginx /var/log/nginx \
        /usr/share/nginx/html \
    && chmod -R g+w /etc/nginx /var/cache/nginx /var/lib/nginx \
    && nginx -t -q \
    && rm -rf /tmp/*

EXPOSE 8080
STOPSIGNAL SIGQUIT
USER 101
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["nginx", "-g", "daemon off;"]
