"""The soak suite (issue 15's proof): many hosts in one process against one relay, relay
restarts, a network blip, a database outage, stalled clients, a slow upload and a revoked
host login, each bounded in time. Figures are printed; targets live in bench/herd.py."""
