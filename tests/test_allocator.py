"""mamllib sets glibc's allocator when imported, unless the environment chose its own."""

import json
import os
import platform
import subprocess
import sys

import pytest

from mamllib import allocator

ON_GLIBC = platform.libc_ver()[0] == "glibc"


def _set_in_fresh_process(**env: str) -> bool:
    clean = {k: v for k, v in os.environ.items() if k not in (*allocator.ENVIRONMENT, *allocator.OPT_OUT)}
    code = "import json, mamllib.allocator as a; print(json.dumps(a.keep_freed_memory()))"
    done = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


@pytest.mark.skipif(not ON_GLIBC, reason="mallopt is glibc's")
def test_sets_the_allocator_where_the_environment_does_not():
    assert _set_in_fresh_process() is True


@pytest.mark.parametrize("variable", allocator.ENVIRONMENT)
def test_leaves_an_allocator_the_environment_chose(variable):
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_; the benchmark sets each to measure with it.
    assert _set_in_fresh_process(**{variable: "65536"}) is False


def test_leaves_glibcs_defaults_when_asked():
    assert _set_in_fresh_process(**allocator.OPT_OUT) is False
