"""Atlas partitioning: none. The atlas assets work on the pairing manifest as a whole (pairs are few, each
one a print filmed by a camera), and skip unchanged pairs by content hash instead of by partition."""
from __future__ import annotations

ATLAS_PARTITIONS = None
