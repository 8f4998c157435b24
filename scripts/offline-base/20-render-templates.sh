#!/bin/sh
# Renders every template under $NGINX_ENVSUBST_TEMPLATE_DIR (/etc/nginx/templates) whose name ends
# in $NGINX_ENVSUBST_TEMPLATE_SUFFIX (.template) into $NGINX_ENVSUBST_OUTPUT_DIR (/etc/nginx/conf.d),
# at the same relative path without the suffix. Only variables set in the environment are
# substituted (those whose names match $NGINX_ENVSUBST_FILTER, a grep pattern, when it is set),
# so nginx's own $variables stay as they are.
set -eu

template_dir=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
output_dir=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
filter=${NGINX_ENVSUBST_FILTER:-}

[ -d "$template_dir" ] || exit 0
if [ ! -w "$output_dir" ]; then
    echo "$0: $output_dir is not writable, templates not rendered" >&2
    exit 0
fi

# "${A} ${B} ..." for the variables envsubst may replace.
defined=$(env | cut -d= -f1 | grep -E '^[A-Za-z_][A-Za-z0-9_]*$' \
    | { if [ -n "$filter" ]; then grep -E "$filter"; else cat; fi; } \
    | sed 's/.*/${&}/' | tr '\n' ' ')

find "$template_dir" -follow -type f -name "*$suffix" | sort | while read -r template; do
    relative=${template#"$template_dir"/}
    output="$output_dir/${relative%"$suffix"}"
    mkdir -p "$(dirname "$output")"
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$0: rendering $template to $output" >&2
    envsubst "$defined" < "$template" > "$output"
done
