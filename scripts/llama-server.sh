# Sourced by scripts/test: install llama.cpp's OpenAI-compatible server
# (llama-cpp-python) for tests/realserver, the tests against a real server nobody here
# wrote. Defines one function.
#
#   BOTKIT_TEST_LLAMA=on (the default)  the server is required: build llama-cpp-python
#       once into a wheel cached outside the repository
#       (${XDG_CACHE_HOME:-~/.cache}/botkit/wheels; the build compiles llama.cpp, a few
#       minutes on 2 cores), install it into its own virtualenv .venv-llama (its
#       FastAPI/pydantic stack stays out of botkit's .venv, as a separately installed
#       server would) and export BOTKIT_TEST_LLAMA_PYTHON for the tests. Fails if that
#       cannot be done: a run that cannot test the real server must not pass as if it had.
#   BOTKIT_TEST_LLAMA=off  without it, said out loud: its tests are reported as skipped.
#
# Needs cmake (>= 3.21) and a C++ compiler; as root with apt-get they are installed.

# Pinned: llama.cpp's server behaviour (errors, streaming, structured output) is what the
# tests record, so a new version is taken on purpose, with the tests rerun.
BOTKIT_LLAMA_CPP_PYTHON_VERSION="0.3.36"
# gguf writes the tiny model the tests generate (tests/realserver/tinymodel.py); it runs
# in the server's virtualenv, which has numpy already
BOTKIT_GGUF_VERSION="0.19.0"
# portable (no -march=native: the cached wheel may run on another CPU), CPU only, and
# without the multimodal library (mtmd) the tests never load
BOTKIT_LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_BLAS=OFF"

# Returns 1 when the server is required and cannot be installed, 2 on a bad
# BOTKIT_TEST_LLAMA value.
botkit_test_llama() {
  case "${BOTKIT_TEST_LLAMA:-on}" in
    off)
      unset BOTKIT_TEST_LLAMA_PYTHON
      echo "llama.cpp server tests: off (BOTKIT_TEST_LLAMA=off): they are reported as skipped"
      return 0
      ;;
    on) ;;
    *)
      echo "scripts/test: BOTKIT_TEST_LLAMA must be 'on' or 'off', not '${BOTKIT_TEST_LLAMA}'" >&2
      return 2
      ;;
  esac
  local version="$BOTKIT_LLAMA_CPP_PYTHON_VERSION"
  local venv=.venv-llama
  local python="$PWD/$venv/bin/python"
  if ! "$python" -c "import importlib.metadata as m, sys; sys.exit(
    (m.version('llama_cpp_python'), m.version('gguf')) != ('$version', '$BOTKIT_GGUF_VERSION'))" \
    2>/dev/null; then
    # one folder per version and build flags, so that changing either builds anew
    local flags
    flags="$(printf %s "$BOTKIT_LLAMA_CMAKE_ARGS" | cksum | cut -d' ' -f1)"
    local cache="${XDG_CACHE_HOME:-$HOME/.cache}/botkit/wheels/llama-cpp-python-$version-$flags"
    local wheel
    wheel="$(ls "$cache"/llama_cpp_python-"$version"-*.whl 2>/dev/null | head -n1 || true)"
    if [ -z "$wheel" ]; then
      botkit_llama_build_tools || return 1
      echo "building llama-cpp-python $version (llama.cpp from source; cached in $cache)"
      local start=$SECONDS
      mkdir -p "$cache"
      if ! CMAKE_ARGS="$BOTKIT_LLAMA_CMAKE_ARGS" \
        CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        .venv/bin/python -m pip wheel --quiet --no-deps --no-binary llama-cpp-python \
        -w "$cache" "llama-cpp-python==$version"; then
        echo "scripts/test: could not build llama-cpp-python $version (set" \
          "BOTKIT_TEST_LLAMA=off to run without the real-server tests)" >&2
        return 1
      fi
      echo "built llama-cpp-python in $((SECONDS - start)) s"
      wheel="$(ls "$cache"/llama_cpp_python-"$version"-*.whl | head -n1)"
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    # the server's own dependencies, bounded as its extra states them
    "$venv/bin/python" -m pip install --quiet "${wheel}[server]" "gguf==$BOTKIT_GGUF_VERSION" \
      || return 1
  fi
  export BOTKIT_TEST_LLAMA_PYTHON="$python"
  echo "llama.cpp server tests: on (llama-cpp-python $version, $venv)"
}

# cmake and a C++ compiler, installed with apt-get when run as root
botkit_llama_build_tools() {
  if command -v cmake >/dev/null && command -v c++ >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing cmake and g++ to build llama-cpp-python"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends cmake g++ make >/dev/null
    return
  fi
  echo "scripts/test: building llama-cpp-python needs cmake and a C++ compiler; install" \
    "them, or set BOTKIT_TEST_LLAMA=off to run without the real-server tests" >&2
  return 1
}
