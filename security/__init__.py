"""Security primitives: tokens, permissions, payload envelopes, keys, sealed weights, audit."""
