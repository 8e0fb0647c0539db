#!/bin/sh
# Open MPI launch agent (--mca plm_rsh_agent) for the namespace cluster of
# tests/cluster/netns_cluster.py: called like ssh, `netns-agent.sh [options]
# HOST COMMAND...`, it runs COMMAND through /bin/sh inside the network
# namespace that $MLA_CLUSTER_MAP assigns to HOST (lines "ADDRESS NAMESPACE").
while [ $# -gt 0 ]; do
  case "$1" in
    -*) shift ;;
    *) break ;;
  esac
done
host="$1"
shift
if [ -z "${MLA_CLUSTER_MAP:-}" ] || [ ! -r "$MLA_CLUSTER_MAP" ]; then
  echo "netns-agent: MLA_CLUSTER_MAP does not name a readable host map" >&2
  exit 255
fi
ns=$(awk -v h="$host" '$1 == h { print $2 }' "$MLA_CLUSTER_MAP")
if [ -z "$ns" ]; then
  echo "netns-agent: host '$host' is not in $MLA_CLUSTER_MAP" >&2
  exit 255
fi
exec ip netns exec "$ns" /bin/sh -c "$*"
