#!/usr/bin/env bash
# Exercise the HorizontalPodAutoscaler of a deployed ecr-ocir-sync (a real
# cluster, deploy/kubernetes/) and report whether it scaled out.
#
#  1. Generates COUNT test images (one layer of MIB MiB of random bytes each,
#     so every run's images are new) in a throwaway local registry: Debian's
#     docker-registry on a free 127.0.0.1 port, filled by bench/images.py.
#     No docker needed.
#  2. Pushes each to ECR as REPOSITORY:hpa-<run>-<n> with the project's own
#     `ecr-ocir-sync copy` (AWS credentials from the default chain). If
#     EventBridge is set up (deploy/aws/eventbridge.yaml) those pushes arrive
#     as events by themselves.
#  3. Posts one sync event per image to SERVICE_URL/sync (real copies to every
#     OCIR region), then, every INTERVAL seconds until SECONDS have passed,
#     a burst of BURST events (intake load; they fold into the same jobs) and
#     shows `kubectl get hpa` and `kubectl top pods`.
#  4. Reports replicas at the start, the most seen and at the end. Exit status:
#     0 the HPA scaled out, 1 it did not, 2 bad usage or a missing tool.
#
# Everything is bounded: at most 200 images, 5000 events per burst, one hour.
# The API key is read from $SYNC_API_KEY, else from the cluster's secret
# ecr-ocir-sync-api-key; it is never put on a command line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT

usage() {
    cat <<'EOF'
usage: scripts/test-hpa.sh -u SERVICE_URL -a ACCOUNT -r REGION -p REPOSITORY [options]

Load-tests the HPA of a deployed ecr-ocir-sync and reports whether it scaled out.

required:
  -u SERVICE_URL   base URL of the service, e.g. https://sync.example.com
                   (events go to SERVICE_URL/sync; an Ingress or load balancer spreads them
                   over the pods; `kubectl port-forward svc/ecr-ocir-sync 8080:80` with
                   http://127.0.0.1:8080 works too but sends everything to one pod)
  -a ACCOUNT       AWS account of the ECR registry (12 digits; in SYNC_ALLOWED_ACCOUNTS)
  -r REGION        AWS region of the ECR registry (in SYNC_ALLOWED_REGIONS)
  -p REPOSITORY    an existing ECR repository for the test images, e.g. hpa-test

options:
  -n COUNT         test images to generate and push, 1-200 (default 10)
  -s MIB           payload of each image in MiB, 1-2048 (default 64)
  -b BURST         events per burst while watching, 1-5000 (default 500)
  -c PARALLEL      concurrent requests in a burst, 1-64 (default 16)
  -i INTERVAL      seconds between bursts, 10-300 (default 15)
  -t SECONDS       how long to watch, 60-3600 (default 600)
  -N NAMESPACE     Kubernetes namespace (default: the current context's)
  -h               this help

environment:
  SYNC_API_KEY     the service's API key (default: read from secret ecr-ocir-sync-api-key)
  AWS_*            credentials for pushing to ECR (any source of the default chain)
  PYTHON           Python with the project installed (default: .venv/bin/python)

needs: kubectl (with metrics-server in the cluster for `kubectl top`), curl,
docker-registry (apt-get install docker-registry), the project's .venv (make venv).
EOF
}

die() {
    echo "test-hpa: $*" >&2
    exit 2
}

# in_range NAME VALUE LOW HIGH: VALUE is an integer within [LOW, HIGH].
in_range() {
    if ! [[ "$2" =~ ^[0-9]+$ ]] || (("$2" < $3 || "$2" > $4)); then
        die "$1 must be an integer from $3 to $4, got '$2'"
    fi
}

service_url="" account="" region="" repository="" namespace=""
count=10 mib=64 burst=500 parallel=16 interval=15 seconds=600

while getopts ":u:a:r:p:n:s:b:c:i:t:N:h" option; do
    case "$option" in
        u) service_url="${OPTARG%/}" ;;
        a) account="$OPTARG" ;;
        r) region="$OPTARG" ;;
        p) repository="$OPTARG" ;;
        n) count="$OPTARG" ;;
        s) mib="$OPTARG" ;;
        b) burst="$OPTARG" ;;
        c) parallel="$OPTARG" ;;
        i) interval="$OPTARG" ;;
        t) seconds="$OPTARG" ;;
        N) namespace="$OPTARG" ;;
        h)
            usage
            exit 0
            ;;
        :)
            usage >&2
            die "-$OPTARG needs a value"
            ;;
        *)
            usage >&2
            die "unknown option -$OPTARG"
            ;;
    esac
done
shift $((OPTIND - 1))
(($# == 0)) || {
    usage >&2
    die "unexpected argument '$1'"
}
[[ -n "$service_url" && -n "$account" && -n "$region" && -n "$repository" ]] || {
    usage >&2
    die "-u, -a, -r and -p are required"
}
[[ "$service_url" =~ ^https?://[^[:space:]]+$ ]] || die "-u must be an http(s) URL, got '$service_url'"
[[ "$account" =~ ^[0-9]{12}$ ]] || die "-a must be a 12-digit AWS account, got '$account'"
[[ "$region" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]$ ]] || die "-r must be an AWS region, got '$region'"
[[ "$repository" =~ ^[a-z0-9]+([._/-][a-z0-9]+)*$ ]] || die "-p must be an ECR repository name, got '$repository'"
in_range -n "$count" 1 200
in_range -s "$mib" 1 2048
in_range -b "$burst" 1 5000
in_range -c "$parallel" 1 64
in_range -i "$interval" 10 300
in_range -t "$seconds" 60 3600

python="${PYTHON:-$ROOT/.venv/bin/python}"
sync_cli="$(dirname "$python")/ecr-ocir-sync"
registry_binary="$(command -v docker-registry || echo /usr/bin/docker-registry)"
for tool in kubectl curl; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
[[ -x "$python" && -x "$sync_cli" ]] || die "no project venv at $python: run make venv"
[[ -x "$registry_binary" ]] || die "docker-registry is not installed: apt-get install docker-registry"

kube=(kubectl)
[[ -z "$namespace" ]] || kube+=(--namespace "$namespace")
"${kube[@]}" get hpa ecr-ocir-sync >/dev/null || die "no HPA ecr-ocir-sync in this namespace (deploy/kubernetes/)"

work="$(mktemp -d "${TMPDIR:-/tmp}/test-hpa.XXXXXX")"
registry_pid=""
cleanup() {
    if [[ -n "$registry_pid" ]]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The API key goes into a header file only this user can read (curl -H @file).
(
    umask 077
    key="${SYNC_API_KEY:-}"
    if [[ -z "$key" ]]; then
        key="$("${kube[@]}" get secret ecr-ocir-sync-api-key -o 'jsonpath={.data.api-key}' | base64 -d)" ||
            die "cannot read secret ecr-ocir-sync-api-key: set SYNC_API_KEY"
    fi
    [[ -n "$key" ]] || die "no API key: set SYNC_API_KEY or create secret ecr-ocir-sync-api-key"
    printf 'X-API-Key: %s\nContent-Type: application/json\n' "$key" >"$work/headers"
)

replicas() {
    local count
    count="$("${kube[@]}" get hpa ecr-ocir-sync -o 'jsonpath={.status.currentReplicas}' 2>/dev/null)" || count=0
    echo "${count:-0}"
}

show_state() {
    echo "--- $(date -u +%H:%M:%S) ---"
    "${kube[@]}" get hpa ecr-ocir-sync || true
    "${kube[@]}" top pods -l app.kubernetes.io/name=ecr-ocir-sync 2>/dev/null ||
        echo "(kubectl top unavailable: is metrics-server installed?)"
}

# post_events FILE N: N posts of the event in FILE, PARALLEL at a time; one status per line.
post_events() {
    # --no-progress-meter, not --silent: curl 7.88 still draws the --parallel meter with -s.
    curl --no-progress-meter --parallel --parallel-max "$parallel" --max-time 10 \
        --header "@$work/headers" --data-binary "@$1" \
        --output /dev/null --write-out '%{http_code}\n' \
        "$service_url/sync?n=[1-$2]" >>"$work/statuses" 2>>"$work/curl.log" || true
}

# --- 1. generate the images in a local registry -------------------------------
port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/storage
http:
  addr: 127.0.0.1:$port
EOF
"$registry_binary" serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 100); do
    curl --silent --fail --output /dev/null "http://127.0.0.1:$port/v2/" && break
    sleep 0.2
done
curl --silent --fail --output /dev/null "http://127.0.0.1:$port/v2/" ||
    die "the local registry did not start: $(tail -n 5 "$work/registry.log")"

run="$(date -u +%Y%m%d%H%M%S)"
echo "generating $count image(s) of $mib MiB in the local registry 127.0.0.1:$port"
(cd "$ROOT" && "$python" - "http://127.0.0.1:$port" "$run" "$count" "$mib") >"$work/images" <<'PY'
import sys

from bench.images import MIB, ImageSpec, push_image

base_url, run, count, mib = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for n in range(1, count + 1):
    pushed = push_image(base_url, ImageSpec(f"hpa-{run}-{n}", 1, mib * MIB), tag="v1")
    print(f"{pushed.repository}:{pushed.tag} hpa-{run}-{n}")
PY

# --- 2. push them to ECR ------------------------------------------------------
ecr="$account.dkr.ecr.$region.amazonaws.com"
pushed=0
while read -r local_image tag; do
    if "$sync_cli" copy --insecure "127.0.0.1:$port" --json \
        "127.0.0.1:$port/$local_image" "$ecr/$repository:$tag" >"$work/copy.json"; then
        pushed=$((pushed + 1))
        echo "pushed $ecr/$repository:$tag"
    else
        echo "push of $tag to ECR failed:" >&2
        cat "$work/copy.json" >&2
    fi
done <"$work/images"
((pushed > 0)) || die "no image reached ECR: check AWS credentials and that $repository exists"

# --- 3. events, and the HPA under them ----------------------------------------
: >"$work/statuses"
while read -r _ tag; do
    printf '{"account": "%s", "region": "%s", "detail": {"action-type": "PUSH", "repository-name": "%s", "image-tag": "%s"}}\n' \
        "$account" "$region" "$repository" "$tag" >"$work/event-$tag.json"
    post_events "$work/event-$tag.json" 1
done <"$work/images"
events=("$work"/event-*.json)

start_replicas="$(replicas)"
most_replicas="$start_replicas"
echo "HPA at $start_replicas replica(s); watching for $seconds s, a burst of $burst event(s) every $interval s"
show_state
deadline=$((SECONDS + seconds))
round=0
while ((SECONDS < deadline)); do
    post_events "${events[round % ${#events[@]}]}" "$burst"
    round=$((round + 1))
    now="$(replicas)"
    if ((now > most_replicas)); then
        most_replicas="$now"
    fi
    show_state
    remaining=$((deadline - SECONDS))
    ((remaining > 0)) || break
    sleep "$((remaining < interval ? remaining : interval))"
done
end_replicas="$(replicas)"

# --- 4. report ----------------------------------------------------------------
echo
echo "=== report (run $run) ==="
echo "images pushed to ECR: $pushed of $count, $mib MiB each, as $ecr/$repository:hpa-$run-<n>"
echo "events posted: $(wc -l <"$work/statuses"); answers by status:"
sort "$work/statuses" | uniq -c | sed 's/^/  /'
if [[ -s "$work/curl.log" ]]; then
    echo "transport errors (first 5):"
    sort "$work/curl.log" | uniq -c | head -n 5 | sed 's/^/  /'
fi
echo "replicas: start $start_replicas, most $most_replicas, end $end_replicas"
if ((most_replicas > start_replicas)); then
    echo "result: the HPA scaled out"
else
    echo "result: the HPA did not scale out (more images, larger -s or bursts may be needed)"
    exit 1
fi
