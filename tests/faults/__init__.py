"""Fault injection: real ``botkit run`` processes killed (SIGKILL), frozen (SIGSTOP),
stopped (SIGTERM) and restarted, PostgreSQL restarted, the model failing, bad webhook
bodies; what the channel fakes received is counted. The harness is ``harness.py``."""
