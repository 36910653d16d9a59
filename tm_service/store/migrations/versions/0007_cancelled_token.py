"""Cancel across replicas (issue 13): ``stepping_transactions.cancelled_token``.

The lease token a running job held when it was cancelled (NULL: it was not held, or
what was in flight is known). The replica that held it may still record the result of
the call it had in flight (guarded by this token), and a cancelled saga whose runner
never reported compensates the step that call was for. Nullable, no default: no
table rewrite.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stepping_transactions", sa.Column("cancelled_token", sa.BigInteger))


def downgrade() -> None:
    op.drop_column("stepping_transactions", "cancelled_token")
