#!/bin/sh
# Creates sculptsvc's topics on a fresh cluster; safe to re-run (existing topics are kept).
#   BOOTSTRAP            broker to talk to (host:port)
#   REPLICATION_FACTOR   replicas per partition (1 on a single-node broker, 3 in production)
#   TOPICS               whitespace-separated NAME:PARTITIONS[:KEY=VALUE,KEY=VALUE...]
# A topic that already exists with fewer partitions than asked is reported, not altered:
# adding partitions moves keys (order ids) to other partitions, so do it deliberately.
set -eu
KAFKA_BIN=${KAFKA_BIN:-/opt/kafka/bin}
: "${BOOTSTRAP:?BOOTSTRAP is required}" "${TOPICS:?TOPICS is required}"
RF=${REPLICATION_FACTOR:-1}

for spec in $TOPICS; do
  name=${spec%%:*}
  rest=${spec#*:}
  partitions=${rest%%:*}
  configs=""
  [ "$rest" != "$partitions" ] && configs=${rest#*:}
  set -- --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$name" \
    --partitions "$partitions" --replication-factor "$RF"
  if [ -n "$configs" ]; then
    for kv in $(echo "$configs" | tr ',' ' '); do set -- "$@" --config "$kv"; done
  fi
  "$KAFKA_BIN/kafka-topics.sh" "$@"
  have=$("$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --describe --topic "$name" \
    | sed -n 's/.*PartitionCount: *\([0-9]*\).*/\1/p' | head -n1)
  if [ "${have:-0}" -lt "$partitions" ]; then
    echo "WARNING: $name has $have partitions, $partitions wanted (not altered)" >&2
  fi
  echo "topic $name: ${have:-?} partitions"
done
