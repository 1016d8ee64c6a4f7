"""The network guard fails a test that tried to leave the machine, even when the code
under test swallowed the error, and sees what the test's subprocesses attempt too."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from netguard_core import LOG_VARIABLE, guarded_environ, local_address, local_name

GUARD_DIR = Path(__file__).resolve().parent / "netguard"

SWALLOWING_TESTS = """
import asyncio
import socket
import subprocess
import sys


def test_tcp_connect_swallowed():
    try:
        socket.create_connection(("203.0.113.7", 443), timeout=1)
    except OSError:
        pass  # what a retry loop or an apology handler does


def test_name_lookup_swallowed():
    try:
        socket.getaddrinfo("api.openai.com", 443)
    except OSError:
        pass


def test_udp_sendto_swallowed():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(b"x", ("198.51.100.9", 53))
        except OSError:
            pass


def test_asyncio_connection_swallowed():
    async def main():
        try:
            await asyncio.open_connection("192.0.2.1", 80)
        except OSError:
            pass

    asyncio.run(main())


def test_subprocess_attempt_swallowed():
    code = (
        "import socket\\n"
        "try:\\n"
        "    socket.create_connection(('203.0.113.8', 80), timeout=1)\\n"
        "except OSError:\\n"
        "    print('swallowed')\\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "swallowed", done.stderr


def test_loopback_is_allowed():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        socket.getaddrinfo("localhost", port)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
"""


def test_the_guard_fails_tests_whose_code_swallowed_the_blocked_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        f"import sys\nsys.path.insert(0, {str(GUARD_DIR)!r})\n"
        'pytest_plugins = ["botkit_netguard"]\n'
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_swallowing=SWALLOWING_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    # every body passed: only the guard's teardown check fails them
    result.assert_outcomes(passed=6, errors=5)
    out = result.stdout.str()
    for test, attempt in [
        ("test_tcp_connect_swallowed", "TCP connect to ('203.0.113.7', 443)"),
        ("test_name_lookup_swallowed", "name lookup getaddrinfo('api.openai.com')"),
        ("test_udp_sendto_swallowed", "UDP sendto ('198.51.100.9', 53)"),
        ("test_asyncio_connection_swallowed", "TCP connect to ('192.0.2.1', 80)"),
        ("test_subprocess_attempt_swallowed", "TCP connect to ('203.0.113.8', 80)"),
    ]:
        assert f"ERROR at teardown of {test}" in out
        assert attempt in out, (test, out)
    assert "test_loopback_is_allowed" not in out.split("short test summary")[-1]
    assert "tried to leave the machine 1 time(s)" in out


def test_the_check_fails_on_attempts_and_passes_on_none() -> None:
    from botkit_netguard import check

    check([])
    with pytest.raises(pytest.fail.Exception, match=r"1 time\(s\)[\s\S]*connect to x"):
        check(["TCP connect to x"])


def test_subprocesses_inherit_the_guard() -> None:
    assert os.environ[LOG_VARIABLE]
    assert str(GUARD_DIR) in os.environ["PYTHONPATH"].split(os.pathsep)
    done = subprocess.run(
        [sys.executable, "-c", "import sys; print('netguard_core' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "True"


def test_an_environment_built_from_scratch_keeps_the_guard() -> None:
    env = guarded_environ({"HOME": "/nowhere"}, PYTHONPATH="/repo")
    assert env["PYTHONPATH"].split(os.pathsep) == [str(GUARD_DIR), "/repo"]
    assert env[LOG_VARIABLE] == os.environ[LOG_VARIABLE]


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.5.6.7", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", True),
        ("localhost", True),
        ("", True),
        ("10.0.0.1", False),
        ("203.0.113.7", False),
        ("2001:db8::1", False),
        ("example.com", False),
    ],
)
def test_what_counts_as_this_machine(host: str, local: bool) -> None:
    assert local_address(host) is local


def test_literals_and_local_names_need_no_lookup() -> None:
    assert local_name("203.0.113.7")
    assert local_name("localhost")
    assert local_name("web.localhost")
    assert local_name(b"localhost")
    assert local_name(socket.gethostname())
    assert not local_name("api.telegram.org")
