"""The evidence log: an append-only RFC 9162 Merkle log of everything the hub signs and
every registry change, signed tree heads with RFC 3161 time-stamps, evidence bundles and
their offline verification. See docs/evidence.md."""
