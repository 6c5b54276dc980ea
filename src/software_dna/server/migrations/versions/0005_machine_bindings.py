"""machine identity: encrypted machine bindings, keyed index, sharing columns

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

- ``machine_bindings``: every component set an activation was bound to,
  sealed with AES-256-GCM under the master key's ``bindings`` key
  (associated data: binding id + product id);
- ``binding_index``: HMACs (``binding-index`` key) of ``product \\0 name \\0
  hash`` of the identifying components of algorithm-2 sets;
- ``activations``: ``binding_id`` (current binding); ``fingerprint_id``
  becomes an opaque ``fp_<random>`` id (the old one held a component hash);
  the plain ``fingerprint`` JSON column is moved (encrypted, algorithm 1)
  into ``machine_bindings`` and dropped; ``secret_generation``,
  ``secret_grace``, ``shared_at``, ``shared_reason`` (secret rotation and
  sharing detection);
- ``products``: ``sharing_policy``, ``rebind_limit``, ``rebind_period``;
  ``fingerprint_tolerance`` above 1 is clamped to 1;
- ``trials.fingerprint_id`` becomes opaque too; ``trial_components`` is
  dropped: its algorithm-1 HMACs can never match an algorithm-2 set, trials
  are found through their activations' bindings.

Moving component data needs the master key (``Settings``, as the server
uses it); a database without activations migrates without one.  Existing
activations keep their seats; they validate with their algorithm-1 set
until their SDK migrates them (``previous`` in a validation).
"""

from __future__ import annotations

import json
import secrets

import sqlalchemy as sa
from alembic import op

from software_dna.server.config import Settings
from software_dna.server.crypto import Vault

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def _vault() -> Vault:
    """The server's vault (master key from the settings the migration runs with)."""
    config = op.get_context().config
    settings = config.attributes.get("settings") if config is not None else None
    if settings is None:  # alembic run by hand: the environment names the key
        settings = Settings.from_env()
    return Vault.from_settings(settings)


def _fp_id() -> str:
    return "fp_" + secrets.token_urlsafe(16)


def _add_columns() -> None:
    # Plain ADD COLUMN on both backends: SQLite needs no table rebuild (which, with
    # foreign keys on, would fire the cascades of the tables pointing here).
    op.add_column("activations", sa.Column("binding_id", sa.String(length=40), nullable=True))
    op.add_column("activations", sa.Column("secret_generation", sa.Integer(), nullable=False,
                                           server_default="0"))
    op.add_column("activations", sa.Column("secret_grace", sa.Integer(), nullable=True))
    op.add_column("activations", sa.Column("shared_at", sa.DateTime(), nullable=True))
    op.add_column("activations", sa.Column("shared_reason", sa.String(length=32),
                                           nullable=True))
    op.add_column("products", sa.Column("sharing_policy", sa.String(length=16), nullable=False,
                                        server_default="flag"))
    op.add_column("products", sa.Column("rebind_limit", sa.Integer(), nullable=True,
                                        server_default="3"))
    op.add_column("products", sa.Column("rebind_period", sa.Integer(), nullable=False,
                                        server_default="2592000"))


def _create_tables() -> None:
    op.create_table(
        "machine_bindings",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("activation_id", sa.String(length=40), nullable=False),
        sa.Column("algorithm", sa.Integer(), nullable=False),
        sa.Column("components_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("bound_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"],
                                name=op.f("fk_machine_bindings_product_id_products")),
        sa.ForeignKeyConstraint(["activation_id"], ["activations.id"],
                                name=op.f("fk_machine_bindings_activation_id_activations"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_machine_bindings")),
    )
    op.create_index(op.f("ix_machine_bindings_product_id"), "machine_bindings",
                    ["product_id"], unique=False)
    op.create_index(op.f("ix_machine_bindings_activation_id"), "machine_bindings",
                    ["activation_id"], unique=False)
    op.create_table(
        "binding_index",
        sa.Column("binding_id", sa.String(length=40), nullable=False),
        sa.Column("term", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["binding_id"], ["machine_bindings.id"],
                                name=op.f("fk_binding_index_binding_id_machine_bindings"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("binding_id", "term", name=op.f("pk_binding_index")),
    )
    op.create_index(op.f("ix_binding_index_term"), "binding_index", ["term"], unique=False)


def _move_fingerprints(conn: sa.Connection) -> None:
    """Seal every activation's algorithm-1 set into a binding; opaque fingerprint ids."""
    activations = sa.table(
        "activations", sa.column("id", sa.String), sa.column("license_id", sa.String),
        sa.column("fingerprint", sa.JSON), sa.column("fingerprint_id", sa.String),
        sa.column("binding_id", sa.String), sa.column("created_at", sa.DateTime),
        sa.column("last_seen_at", sa.DateTime))
    licenses = sa.table("licenses", sa.column("id", sa.String),
                        sa.column("product_id", sa.String))
    bindings = sa.table(
        "machine_bindings", sa.column("id", sa.String), sa.column("product_id", sa.String),
        sa.column("activation_id", sa.String), sa.column("algorithm", sa.Integer),
        sa.column("components_ciphertext", sa.LargeBinary),
        sa.column("bound_at", sa.DateTime), sa.column("last_seen_at", sa.DateTime))
    rows = conn.execute(
        sa.select(activations.c.id, activations.c.fingerprint, activations.c.created_at,
                  activations.c.last_seen_at, licenses.c.product_id)
        .select_from(activations.join(licenses, licenses.c.id == activations.c.license_id))
    ).all()
    vault = _vault() if rows else None
    for row in rows:
        assert vault is not None
        raw = row.fingerprint
        if isinstance(raw, str):
            raw = json.loads(raw)
        components = {str(k): str(v) for k, v in dict(raw or {}).items()}
        binding_id = "bnd_" + secrets.token_urlsafe(16)
        sealed = vault.seal_components(
            json.dumps(components, sort_keys=True, separators=(",", ":")).encode("utf-8"),
            binding_id=binding_id, product_id=row.product_id)
        conn.execute(sa.insert(bindings).values(
            id=binding_id, product_id=row.product_id, activation_id=row.id, algorithm=1,
            components_ciphertext=sealed, bound_at=row.created_at,
            last_seen_at=row.last_seen_at))
        conn.execute(sa.update(activations).where(activations.c.id == row.id)
                     .values(binding_id=binding_id, fingerprint_id=_fp_id()))
    trials = sa.table("trials", sa.column("id", sa.String),
                      sa.column("fingerprint_id", sa.String))
    for (trial_id,) in conn.execute(sa.select(trials.c.id)).all():
        conn.execute(sa.update(trials).where(trials.c.id == trial_id)
                     .values(fingerprint_id=_fp_id()))


def upgrade() -> None:
    """Apply this revision."""
    conn = op.get_bind()
    _add_columns()
    _create_tables()
    _move_fingerprints(conn)
    conn.execute(sa.text("UPDATE products SET fingerprint_tolerance = 1 "
                         "WHERE fingerprint_tolerance > 1"))
    op.drop_index(op.f("ix_trial_components_value"), table_name="trial_components")
    op.drop_table("trial_components")
    op.drop_column("activations", "fingerprint")


def downgrade() -> None:
    """Not supported: the component data is sealed, and old sets cannot be rebuilt."""
    raise NotImplementedError("0005 cannot be downgraded; restore a backup instead")
