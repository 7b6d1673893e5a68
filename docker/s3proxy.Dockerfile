# syntax=docker/dockerfile:1.7
# s3proxy (Apache-2.0) on the local filesystem: the S3-compatible server of docker/compose.yaml,
# resolved by Maven from s3/pom.xml, so compose runs the very version the tests run against.
# For production point SCULPT_S3_ENDPOINT_URL at your object store (AWS S3, MinIO, Ceph RGW)
# instead: this one has no replication.
#
#   docker build -f docker/s3proxy.Dockerfile -t sculptsvc-s3proxy .
#
# Environment: S3_ACCESS_KEY, S3_SECRET_KEY (required), S3_PORT (default 9000).
# Objects live in /data (a volume).

FROM maven:3.9-eclipse-temurin-17 AS jars
COPY s3/pom.xml /src/s3/pom.xml
RUN mvn -q -B -f /src/s3/pom.xml -Ds3.lib.dir=/opt/s3proxy/lib package

FROM eclipse-temurin:17-jre
COPY --from=jars /opt/s3proxy/lib /opt/s3proxy/lib
COPY s3/logback.xml /opt/s3proxy/logback.xml
COPY --chmod=0755 docker/s3proxy-entrypoint.sh /opt/s3proxy/entrypoint.sh
RUN groupadd --system --gid 10002 s3 \
 && useradd --system --uid 10002 --gid s3 --home-dir /opt/s3proxy s3 \
 && mkdir -p /data && chown s3:s3 /data
USER s3:s3
VOLUME ["/data"]
EXPOSE 9000
ENTRYPOINT ["/opt/s3proxy/entrypoint.sh"]
