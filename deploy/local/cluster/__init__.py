"""A multi-host Exhaust cluster on one machine, a fault injector, a load generator and a
checker of the invariants (docs/reliability.md)."""
