"""Store every X handle in its canonical lowercase form (X handles are case-insensitive)

Before this, `Alice` and `alice` were two accounts, so the per-account duplicate guard could be bypassed.
Existing rows are lowered; two registered handles that differ only in case cannot be merged automatically,
so the upgrade stops and names them.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Tables that name an account (their `account` column); accounts.handle is the key they point at.
ACCOUNT_TABLES = ("content_items", "tweets", "post_attempts", "metric_snapshots", "breaker_events",
                  "breaker_transitions")


def upgrade() -> None:
    conn = op.get_bind()
    clashes = conn.execute(sa.text(
        "SELECT lower(handle) FROM accounts GROUP BY lower(handle) HAVING count(*) > 1")).scalars().all()
    if clashes:
        raise RuntimeError(
            f"accounts {', '.join(sorted(clashes))} are registered in more than one letter case; X sees one account. "
            "Keep one spelling (move or cancel the other's items, delete its accounts row), then upgrade again")
    # A lowercase copy first, so the foreign keys of content_items always point at an existing account.
    conn.execute(sa.text(
        "INSERT INTO accounts (handle, storage_state_path, timezone, created_at) "
        "SELECT lower(handle), storage_state_path, timezone, created_at FROM accounts WHERE handle <> lower(handle)"))
    for table in ACCOUNT_TABLES:
        conn.execute(sa.text(f"UPDATE {table} SET account = lower(account) WHERE account <> lower(account)"))
    # A breaker row per account: a mixed-case duplicate of an existing lowercase row is dropped.
    conn.execute(sa.text(
        "DELETE FROM breaker_state WHERE account <> lower(account) "
        "AND lower(account) IN (SELECT account FROM breaker_state WHERE account = lower(account))"))
    conn.execute(sa.text("UPDATE breaker_state SET account = lower(account) WHERE account <> lower(account)"))
    conn.execute(sa.text("DELETE FROM accounts WHERE handle <> lower(handle)"))


def downgrade() -> None:
    """Nothing to undo: the original letter case is not kept, and lowercase handles are valid before 0004."""
