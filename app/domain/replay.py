"""Which signed calls a worker has seen: a signature authorises one endpoint, once per window.

The Learnosity SDKs' signature covers the security fields, the request text and the action, but
not the endpoint, so a captured signed call could be sent to another endpoint that takes the
same request (an initialise replayed as a commence). The ledger remembers, for each signature
until its packet expires, the endpoint it was first used on, and refuses it anywhere else.
Sending it again to the same endpoint is let through: the SDKs sign per minute, so two identical
polls in one minute carry one signature, and every write there is idempotent by ``dataset_id``.

Bounded: at most ``max_entries`` signatures (the oldest are forgotten first, after the expired
ones). Per worker: a replay to another worker is caught by that worker's own ledger only if it
saw the signature, which is why packets are also short-lived (``expires`` bounded). No I/O, no
clock: ``now`` is passed in.
"""

from __future__ import annotations

from collections import OrderedDict


class SignatureLedger:
    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._seen: OrderedDict[str, tuple[str, float]] = OrderedDict()  # sig -> (endpoint, until)

    def admit(self, signature: str, endpoint: str, until: float, now: float) -> bool:
        """Whether ``signature`` may be used on ``endpoint`` (and remember it until ``until``)."""
        self._purge(now)
        seen = self._seen.get(signature)
        if seen is not None:
            return seen[0] == endpoint
        self._seen[signature] = (endpoint, until)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        return True

    def _purge(self, now: float) -> None:
        while self._seen:
            signature, (_, until) = next(iter(self._seen.items()))
            if until > now:
                return
            del self._seen[signature]

    def __len__(self) -> int:
        return len(self._seen)
