# shellcheck shell=bash disable=SC2034  # sourced; the variables are used by the scripts that source it
# Shared by up, down and status (sourced, not run). Paths and health checks live here so that
# the three scripts agree on what "running" means.
# Layout (same as ../shared/devenv, so parts started by either copy are recognised by both):
#   $D/dockerd.pid, $D/registry.pid, $D/logs/{dockerd,registry}.log, $D/registry/ (image data)
#   $K/<component>.pid, $K/<component>.log, $K/pki/, $K/admin.kubeconfig, $K/etcd/ (cluster data)
D=${DEVENV_DIR:-/var/lib/skiff-devenv}
K=$D/kube
KUBE_CACHE=${KUBE_CACHE:-/var/cache/skiff-devenv/kubernetes-1.20.2}
KUBE_COMPONENTS="etcd apiserver controller-manager scheduler kubelet"
DOCKER_SOCK=unix:///var/run/docker.sock
REGISTRY=127.0.0.1:5000
APISERVER=https://127.0.0.1:6443
KUBECONTEXT=skiff-devenv

log() { echo "devenv: $*" >&2; }

wait_for() { # seconds cmd...   retry cmd once a second
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  return 1
}

alive() { # pidfile   the process a pid file names is still running, and is still ours: after a
  # reboot the pid may belong to something else, so its program name must contain the file's name
  # (dockerd.pid: dockerd, registry.pid: docker-registry, apiserver.pid: kube-apiserver, ...).
  local pid argv0
  pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] || return 1
  argv0=$(tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | head -1) || return 1
  [[ $(basename "$argv0") == *"$(basename "$1" .pid)"* ]]
}

kcurl() { # url   as the cluster admin (the client certificate up generated)
  curl -fsk --max-time 5 --cert "$K/pki/admin.crt" --key "$K/pki/admin.key" "$1"
}

# Health is judged by talking to each part, not by pid files: that also recognises parts started
# by an earlier or concurrent `up` (or by ../shared/devenv/up).
healthy() { # part or kubernetes component
  case $1 in
    docker)             DOCKER_HOST=$DOCKER_SOCK docker info ;;
    registry)           curl -fs --max-time 5 "http://$REGISTRY/v2/" ;;
    etcd)               curl -fs --max-time 5 http://127.0.0.1:2379/health ;;
    apiserver)          kcurl "$APISERVER/readyz" ;;
    # controller-manager and scheduler serve /healthz to anyone on their secure ports.
    controller-manager) curl -fsk --max-time 5 https://127.0.0.1:10257/healthz ;;
    scheduler)          curl -fsk --max-time 5 https://127.0.0.1:10259/healthz ;;
    kubelet)            curl -fs --max-time 5 http://127.0.0.1:10248/healthz ;;
    *)                  return 2 ;;
  esac >/dev/null 2>&1
}

node_ready() { # node Ready and without the not-ready/unreachable taints the scheduler respects
  kcurl "$APISERVER/api/v1/nodes/localhost" | jq -e '
    any(.status.conditions[]?; .type == "Ready" and .status == "True")
    and (any(.spec.taints[]?; .key | test("not-ready|unreachable")) | not)' >/dev/null 2>&1
}
