#!/usr/bin/env bash
# Wheel smoke test (`make wheel-smoke`): build the wheel, install it into a fresh venv outside the checkout and
# run the installed program from a folder outside the checkout: --version, `python -m solarjax --help`, the
# packaged configs and static files, `solarjax physics` on a real SHARP Br file and, given a demo output
# (SOLARJAX_SMOKE_DEMO, e.g. the quick demo `make test` built), `solarjax serve` answering /api/info.
#
# Cheap by design: the fresh venv has no pip and no copies of the dependencies; a .pth file points it at the
# dependencies already installed in $PY's venv (not at the checkout: that venv's .pth files, the editable
# install among them, are not read), and the wheel is installed with --no-deps.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
py=${PY:-$repo/.venv/bin/python}
case "$py" in /*) ;; *) py=$repo/$py ;; esac
data=${SOLARJAX_SHARED_DATA:-$repo/../shared/data}
work=$(mktemp -d "${TMPDIR:-/tmp}/solarjax-wheel-smoke.XXXXXX")
server=
cleanup() { if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT
unset PYTHONPATH
export PYTHONNOUSERSITE=1
step() { printf 'wheel-smoke: %s (%d s)\n' "$*" "$SECONDS"; }

# 1. The wheel (with the venv's setuptools and wheel when it has both, else pip's isolated build).
isolation=
"$py" -c "import setuptools, wheel" 2>/dev/null && isolation=--no-build-isolation
# from a copy of what the wheel is made of: no build/ left in the checkout, no stale build/ files in the wheel
mkdir "$work/src" && cp -r "$repo"/{pyproject.toml,README.md,solarjax,data_builders} "$work/src/"
"$py" -m pip wheel --quiet --no-deps $isolation --wheel-dir "$work/dist" "$work/src"
wheel=$(echo "$work"/dist/solarjax-*.whl)
step "built $(basename "$wheel")"

# 2. A fresh venv outside the checkout: the wheel, and the dependencies through a .pth file.
"$py" -m venv --without-pip "$work/venv"
purelib() { "$1" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"; }
purelib "$py" > "$(purelib "$work/venv/bin/python")/solarjax_smoke_dependencies.pth"
"$py" -m pip --python "$work/venv/bin/python" install --quiet --no-deps --no-index "$wheel"
bin=$work/venv/bin
mkdir "$work/run" && cd "$work/run"

# 3. The installed program, run from outside the checkout.
version=$("$bin/python" -c "import solarjax; print(solarjax.__version__)")
test "$("$bin/solarjax" --version)" = "solarjax $version"
"$bin/python" -m solarjax --help | grep -q "^solarjax: generate solar active regions"
"$bin/python" - "$work" <<'EOF'
import importlib.resources, pathlib, sys
import solarjax
from solarjax import configs
where = pathlib.Path(solarjax.__file__).resolve()
assert where.is_relative_to(pathlib.Path(sys.argv[1]).resolve() / "venv"), f"solarjax imported from {where}"
for name in configs.NAMES:
    configs.load(name)
static = importlib.resources.files("solarjax.app") / "static"
missing = [n for n in ("index.html", "app.js", "style.css") if not (static / n).is_file()]
assert not missing, f"static files missing from the wheel: {missing}"
EOF
step "solarjax $version from $work/venv: --version, python -m solarjax --help, packaged configs, static files"
set +e
"$bin/solarjax" train gan --config gan_paper --config.no_such_field=1 --workdir w 2> err.txt
status=$?
set -e
test "$status" = 2 && grep -q "unknown config field 'no_such_field'" err.txt

fits=$(ls "$data"/sharp_cea/*.Br.fits | head -1)
"$bin/solarjax" physics --json "$fits" > physics.json
"$bin/python" - physics.json <<'EOF'
import json, sys
(record,) = json.load(open(sys.argv[1]))
flux, tuf = record["physical"]["unsigned_flux_full_res_mx"], record["quantities"]["tuf"]
assert 0 < tuf < 1 and 1e20 < flux < 1e24, record  # an active region's flux, Mx
print(f"wheel-smoke: physics {record['path'].rsplit('/', 1)[-1]}: TUF {tuf:.4f}, flux above 150 G {flux:.3e} Mx")
EOF

# 4. The web app on a demo output, when one is given.
if [ -n "${SOLARJAX_SMOKE_DEMO:-}" ]; then
  port=$("$bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  "$bin/solarjax" serve --workdir "$SOLARJAX_SMOKE_DEMO" --port "$port" > serve.log 2>&1 &
  server=$!
  "$bin/python" - "$port" "$server" <<'EOF'
import json, os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
for _ in range(600):
    try:
        info = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=5))
        break
    except OSError:
        os.kill(pid, 0)  # the server must still be running
        time.sleep(0.5)
else:
    sys.exit("wheel-smoke: solarjax serve did not answer /api/info within 300 s (serve.log: " + open("serve.log").read()[-500:] + ")")
page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
assert "<html" in page.lower() and info, "no page"
print(f"wheel-smoke: solarjax serve answered /api/info and / on port {port}")
EOF
else
  step "serve not checked (set SOLARJAX_SMOKE_DEMO to a demo output folder)"
fi
step "passed"
