"""The domain: records, rules and the state machine, with no I/O and no clock."""
