#!/usr/bin/env bash
# Create (or reuse) the project environment: system packages, .venv, torch, Lightning,
# h5py, mpi4py, and PETSc + petsc4py built from PyPI with optimisation flags.
#
# Idempotent: every step is skipped when its result is already present, and a stamp
# file records a complete environment so that `make test` / `make demo` reuse it.
# Variables (override on the command line or in the environment):
#   PYTHON       interpreter used to create the venv (default: python3)
#   VENV         virtualenv folder (default: .venv)
#   TORCH_SPEC   pip requirement for torch (default: torch==2.13.0, a CPU build where one
#                is on disk; on a GPU machine use e.g. TORCH_SPEC='torch>=2.4')
#   PETSC_VERSION           petsc / petsc4py version (default 3.26.1)
#   PETSC_CONFIGURE_OPTIONS extra configure flags for PETSc (ours come first)
#   PETSC_EXTERNAL          'auto' (default): build PETSc with the sparse direct solvers whose Debian
#                           packages need no MPI (SuperLU; SuiteSparse: UMFPACK, CHOLMOD, KLU), installing
#                           libsuperlu-dev / libsuitesparse-dev when root with apt-get, and using them when
#                           their headers and libraries are found; 'none': PETSc without them. Without them
#                           everything still works: the toolkit asks PETSc at run time what it has.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
PETSC_VERSION="${PETSC_VERSION:-3.26.1}"
PETSC_EXTERNAL="${PETSC_EXTERNAL:-auto}"
case "$PETSC_EXTERNAL" in auto|none) ;; *)
    echo "PETSC_EXTERNAL=$PETSC_EXTERNAL: expected 'auto' or 'none' (e.g. PETSC_EXTERNAL=none make env)" >&2; exit 1;;
esac
STAMP="$VENV/.neuralops-env"
# The stamp's content: anything that changes it forces the affected steps to rerun.
WANT="torch=$TORCH_SPEC petsc=$PETSC_VERSION external=$PETSC_EXTERNAL opts=${PETSC_CONFIGURE_OPTIONS:-} deps=$(sha1sum pyproject.toml scripts/setup_env.sh | sha1sum | cut -c1-12)"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
    exit 0
fi

# ---------------------------------------------------------------- system packages
need_cmds=(cc c++ make mpicc mpiexec pkg-config)
missing=()
for c in "${need_cmds[@]}"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
have_blas=0
if ldconfig -p 2>/dev/null | grep -qE 'libopenblas\.so|liblapack\.so '; then
    if ls /usr/include/*/cblas*.h /usr/include/cblas*.h /usr/include/*/openblas*/cblas.h >/dev/null 2>&1 \
       || ldconfig -p | grep -q 'liblapack.so '; then have_blas=1; fi
fi
[[ $have_blas == 1 ]] || missing+=("blas/lapack")
if ((${#missing[@]})); then
    APT_PKGS="build-essential pkg-config mpich libmpich-dev libopenblas-dev liblapack-dev"
    if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
        say "installing system packages ($APT_PKGS) for: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends $APT_PKGS >/dev/null
    else
        echo "neuralops set-up needs: ${missing[*]}" >&2
        echo "Install them first, e.g. on Debian/Ubuntu:" >&2
        echo "    sudo apt-get install $APT_PKGS" >&2
        echo "(any C compiler, an MPI with mpicc/mpiexec, and BLAS/LAPACK will do)" >&2
        exit 1
    fi
fi

# tcmalloc: the allocator every neuralops program preloads when it is installed (datagen/allocator.py;
# measured against glibc's default and tuned settings by benchmarks/allocator.py). Optional: without it
# the programs fall back to glibc with tuned mmap/trim thresholds.
if ! ldconfig -p 2>/dev/null | grep -q 'libtcmalloc_minimal\.so\.4'; then
    if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
        say "installing libtcmalloc-minimal4 (optional allocator)"
        export DEBIAN_FRONTEND=noninteractive
        { apt-get install -y -qq --no-install-recommends libtcmalloc-minimal4 >/dev/null 2>&1 \
          || { apt-get update -qq && apt-get install -y -qq --no-install-recommends libtcmalloc-minimal4 >/dev/null; }; } \
          || say "libtcmalloc-minimal4 not installed; glibc with tuned settings will be used"
    fi
fi

# ---------------------------------------------------------------- external solvers (optional)
# SuperLU and SuiteSparse from the distribution, serial builds that need no MPI. MUMPS, hypre and
# SuperLU_dist are packaged only against Open MPI (and PETSc accepts MUMPS's serial build only
# without MPI), so they cannot be linked with this MPICH build; PETSc's --download-* needs internet at
# configure time. Each package is used only when a test link against it succeeds.
EXT_OPTS=""
EXT_HAVE=()
links() { printf 'int main(void){return 0;}\n' | cc -x c - "$@" -o /dev/null >/dev/null 2>&1; }
if [[ $PETSC_EXTERNAL == auto ]]; then
    if ! { [[ -f /usr/include/superlu/slu_ddefs.h ]] && [[ -f /usr/include/suitesparse/umfpack.h ]]; } \
       && command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
        say "installing libsuperlu-dev libsuitesparse-dev (optional sparse direct solvers for PETSc)"
        export DEBIAN_FRONTEND=noninteractive
        { apt-get install -y -qq --no-install-recommends libsuperlu-dev libsuitesparse-dev >/dev/null 2>&1 \
          || { apt-get update -qq && apt-get install -y -qq --no-install-recommends libsuperlu-dev \
               libsuitesparse-dev >/dev/null; }; } \
          || say "SuperLU/SuiteSparse not installed; PETSc is built with its native LU only"
    fi
    if [[ -f /usr/include/superlu/slu_ddefs.h ]] && links -lsuperlu; then
        EXT_OPTS+=" --with-superlu=1 --with-superlu-include=/usr/include/superlu --with-superlu-lib=-lsuperlu"
        EXT_HAVE+=(SUPERLU)
    fi
    SS_LIBS="-lspqr -lumfpack -lklu -lcholmod -lbtf -lccolamd -lcolamd -lcamd -lamd -lsuitesparseconfig"
    if [[ -f /usr/include/suitesparse/umfpack.h ]] && links $SS_LIBS; then
        EXT_OPTS+=" --with-suitesparse=1 --with-suitesparse-include=/usr/include/suitesparse"
        EXT_OPTS+=" --with-suitesparse-lib=[${SS_LIBS// /,}]"
        EXT_HAVE+=(SUITESPARSE)
    fi
    say "external solvers for PETSc: ${EXT_HAVE[*]:-none found}"
fi

# ---------------------------------------------------------------- virtualenv
if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --progress-bar off)
"${PIP[@]}" -q --upgrade pip setuptools wheel

have() { "$PY" - "$@" <<'PYEOF' >/dev/null 2>&1
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
PYEOF
}

if ! have torch; then
    say "installing $TORCH_SPEC"
    "${PIP[@]}" -q "$TORCH_SPEC"
fi

say "installing Python dependencies"
"${PIP[@]}" -q "numpy>=1.24" "scipy>=1.10" "h5py>=3.8" "matplotlib>=3.7" \
    "lightning>=2.4,<2.7" "jsonargparse[signatures]>=4.27" "tqdm>=4.60" \
    "pytest>=7" "pytest-timeout>=2" "cython>=3" "tensorboard>=2.14" \
    "import-linter>=2.1" "ruff>=0.6" "pyamg>=5"   # pyamg: the plain-SciPy baselines of benchmarks/

# mpi4py must be built against the system MPI (the one PETSc uses), not PyPI's generic wheel.
if ! have mpi4py.MPI; then
    say "building mpi4py against $(command -v mpicc)"
    "${PIP[@]}" -q --no-binary mpi4py --force-reinstall --no-deps "mpi4py>=3.1"
fi

# ---------------------------------------------------------------- PETSc + petsc4py
# What PETSc was built with is read from its petscconf.h: a PETSc that lacks a wanted external solver
# (an environment made before they were added) is rebuilt. pip's own wheel cache is bypassed
# (--no-cache-dir): it is keyed on the sdist, not on PETSC_CONFIGURE_OPTIONS, and would hand back a wheel
# built with other options (and a petsc4py linked against another PETSc). The wheels built here are kept
# instead in a cache keyed on the version, the configure options, the Python and the machine
# (NEURALOPS_WHEEL_CACHE, default: a folder in pip's cache directory), so that a new environment with
# the same build installs them in seconds instead of compiling PETSc again.
petsc_lacks() {  # prints the wanted external packages the installed PETSc was built without
    local conf
    conf="$("$PY" -c 'import petsc, os; print(os.path.join(petsc.get_petsc_dir(), "include", "petscconf.h"))' 2>/dev/null)" \
        || { echo "petsc"; return; }
    for p in "${EXT_HAVE[@]}"; do grep -q "define PETSC_HAVE_$p 1" "$conf" || printf '%s ' "$p"; done
}
WHEEL_CACHE="${NEURALOPS_WHEEL_CACHE:-$("$PY" -m pip cache dir 2>/dev/null || echo "$HOME/.cache/pip")/neuralops-wheels}"
wheel_dir() {  # the cache folder of one PETSc build (its configure options in $OPTS)
    local key
    key="$(printf '%s|%s|%s' "$PETSC_VERSION" "$OPTS" \
        "$("$PY" -c 'import platform, sys; print(sys.version_info[:2], platform.machine(), platform.libc_ver())')" \
        | sha1sum | cut -c1-16)"
    echo "$WHEEL_CACHE/petsc-$PETSC_VERSION-$key"
}
# install NAME (petsc or petsc4py) from the build's cached wheel, or build the wheel, keep it and install it
install_built() {
    local name="$1"; shift
    local dir whl tmp
    dir="$(wheel_dir)"
    whl="$(ls "$dir/$name"-[0-9]*.whl 2>/dev/null | head -n 1 || true)"
    if [[ -z "$whl" ]]; then
        tmp="$(mktemp -d)"
        PETSC_CONFIGURE_OPTIONS="$OPTS" "$PY" -m pip wheel --progress-bar off --no-cache-dir --no-deps -w "$tmp" \
            "$@" "$name==$PETSC_VERSION" || { rm -rf "$tmp"; return 1; }
        mkdir -p "$dir"
        whl="$(ls "$tmp/$name"-[0-9]*.whl | head -n 1)"
        mv "$whl" "$dir/" && whl="$dir/$(basename "$whl")"
        rm -rf "$tmp"
    else
        say "$name: using the wheel built earlier with the same options ($whl)"
    fi
    "${PIP[@]}" --no-deps --force-reinstall "$whl"
}
rebuild_petsc=0
if ! have petsc || [[ -n "$(petsc_lacks)" ]]; then rebuild_petsc=1; fi
if [[ $rebuild_petsc == 1 ]] || ! have petsc4py; then
    # PETSc's own default is a debug build (-g -O): ask for an optimised one.
    # --with-cuda=0: a CUDA compiler may be present without a GPU; --with-fc=0: no Fortran.
    OPTS="--with-debugging=0 --with-cuda=0 --with-fc=0 --with-shared-libraries=1 \
COPTFLAGS=-O3 CXXOPTFLAGS=-O3 --with-mpi=1${EXT_OPTS} ${PETSC_CONFIGURE_OPTIONS:-}"
    if [[ $rebuild_petsc == 1 ]]; then
        say "PETSc $PETSC_VERSION with ${EXT_HAVE[*]:-no external solvers} (a build from PyPI takes about 10-25 minutes on 2 cores)"
        if ! install_built petsc; then
            [[ -n "$EXT_OPTS" ]] || exit 1
            say "PETSc build with ${EXT_HAVE[*]} failed; building it without external solvers"
            OPTS="${OPTS/"$EXT_OPTS"/}"; EXT_OPTS=""; EXT_HAVE=()
            install_built petsc
        fi
        lacking="$(petsc_lacks)"
        if [[ -n "$lacking" ]]; then
            echo "PETSc was built without: $lacking (see its configure.log); rerun with PETSC_EXTERNAL=none" >&2
            exit 1
        fi
    fi
    say "petsc4py $PETSC_VERSION against it (no build isolation: PETSc is not rebuilt)"
    install_built petsc4py --no-build-isolation
fi

# ---------------------------------------------------------------- this project
say "installing neuralops (editable)"
"${PIP[@]}" -q --no-deps --no-build-isolation -e .

"$PY" - <<'PYEOF'
import petsc4py; petsc4py.init([])
from petsc4py import PETSc
import torch, lightning, h5py, scipy
from mpi4py import MPI
print(f"[setup] ok: torch {torch.__version__}, lightning {lightning.__version__}, "
      f"PETSc {'.'.join(map(str, PETSc.Sys.getVersion()))}, h5py {h5py.__version__}")
ext = [p for p in ("superlu", "umfpack", "cholmod", "klu", "mumps", "hypre") if PETSc.Sys.hasExternalPackage(p)]
print(f"[setup] PETSc external solvers: {', '.join(ext) or 'none (native LU only)'}")
PYEOF
echo "$WANT" > "$STAMP"
