"""Machine bindings: every component set an activation was bound to, encrypted.

The component hashes are slow per-product hashes of machine identifiers; a
database copy must not hand them out (they would let anyone test a guessed
machine against the product's hash).  So a binding stores its set sealed
with AES-256-GCM under a key derived from the master key (associated data:
binding id + product id, so a ciphertext moved to another row does not
open), and look-ups go through :class:`BindingIndex`: HMACs of
``product \\0 name \\0 hash`` under another master-derived key.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["BindingIndex", "MachineBinding"]


class MachineBinding(Base):
    """One component set an activation was bound to (history: never updated but for
    ``last_seen_at``)."""

    __tablename__ = "machine_bindings"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    activation_id: Mapped[str] = mapped_column(
        ForeignKey("activations.id", ondelete="CASCADE"), index=True)
    algorithm: Mapped[int] = mapped_column(Integer)  # fingerprint algorithm (1 or 2)
    components_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    bound_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class BindingIndex(Base):
    """A keyed look-up term of a binding's identifying component (``identity.index_terms``)."""

    __tablename__ = "binding_index"

    binding_id: Mapped[str] = mapped_column(
        ForeignKey("machine_bindings.id", ondelete="CASCADE"), primary_key=True)
    term: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
