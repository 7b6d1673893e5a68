#!/bin/sh
# Writes s3proxy's properties from the environment (the secret goes to a 0600 file, never to
# the command line) and runs it in the foreground as PID 1's child.
set -eu
: "${S3_ACCESS_KEY:?S3_ACCESS_KEY is required}" "${S3_SECRET_KEY:?S3_SECRET_KEY is required}"
conf=$(mktemp)
chmod 600 "$conf"
cat >"$conf" <<CONF
s3proxy.endpoint=http://0.0.0.0:${S3_PORT:-9000}
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=${S3_ACCESS_KEY}
s3proxy.credential=${S3_SECRET_KEY}
jclouds.provider=filesystem
jclouds.filesystem.basedir=/data
CONF
exec java -Xms64m -Xmx512m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError \
  -Dlogback.configurationFile=/opt/s3proxy/logback.xml \
  -cp '/opt/s3proxy/lib/*' org.gaul.s3proxy.Main --properties "$conf"
