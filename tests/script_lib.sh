# Sourced by the whole-job test scripts: CASE BINARY REPO_ROOT [MPIRUN...] arguments, a scratch directory
# removed on exit, and fail().
set -u
case=$1 bin=$2 root=$3
shift 3
mpirun=("$@")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
