"""Guards every Python process the tests start (``tests/netguard`` is on their
``PYTHONPATH``): attempts to leave the machine are blocked and written to the log named
by ``$TESTS_NETWORK_GUARD_LOG``, which the test's fixture reads at teardown."""

import netguard_core

netguard_core.install_from_environment()
