# Sourced by the scripts that run on a lent GPU machine (device_features.sh, gpu_check.sh):
# `device_env` installs the wheels of .whl/ (packages the bare CUDA image lacks; no network
# there) into /tmp/site unless INSTALL=0, sets PYTHONPATH (src first) and PYTHONUNBUFFERED,
# and shows the GPU. PY is the Python to use (default python3).
PY="${PY:-python3}"

device_env() {
    if [ "${INSTALL:-1}" = 1 ]; then
        ls .whl/*.whl >/dev/null 2>&1 || echo "!! no wheels under .whl/: was the call made with carry [\".whl\"]?"
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            .whl/*.whl > /tmp/pip_install.log 2>&1
        local pip_rc=$?
        grep -v "Running pip as the 'root' user" /tmp/pip_install.log
        if [ "$pip_rc" != 0 ]; then  # no usable pip: a wheel is a zip of what pip would copy
            echo "!! pip install failed ($pip_rc): unzipping the wheels into /tmp/site instead"
            for w in .whl/*.whl; do "$PY" -m zipfile -e "$w" /tmp/site; done
        fi
        export PYTHONPATH=/tmp/site:src
    else
        export PYTHONPATH=src
    fi
    export PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,temperature.gpu,clocks.max.sm,power.limit \
        --format=csv 2>&1 || echo "nvidia-smi: not available"
}
