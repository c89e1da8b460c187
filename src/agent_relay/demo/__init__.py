"""The one-command demo: relay, sample agent server and connected host in one process."""
