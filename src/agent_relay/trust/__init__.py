"""The trust layer between a client and a host: pairing, keys, signing sessions and the
signatures that keep the relay from forging or reading what it forwards."""
