"""The malloc settings of a tagging process (glibc only)."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc" or sys.maxsize <= 2**32,
    reason="the settings are for 64-bit glibc",
)

APPLY = "from dymn_cli.inference.allocator import keep_freed_memory; print(keep_freed_memory())"


def _apply(env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    done = subprocess.run([sys.executable, "-c", APPLY], env={**clean, **env}, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_glibc_takes_the_settings():
    assert _apply({}) == "True"


@pytest.mark.parametrize("tunable", ["MALLOC_TOP_PAD_=131072", "GLIBC_TUNABLES=glibc.malloc.trim_threshold=0"])
def test_a_user_who_tunes_malloc_keeps_those_settings(tunable):
    name, value = tunable.split("=", 1)
    assert _apply({name: value}) == "False"


def test_tunables_of_other_parts_of_glibc_do_not_count():
    assert _apply({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"}) == "True"
