"""messages by status and conversation: "has this conversation a reply waiting" is a
seek, not a walk through every message of the conversation

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_messages_status", table_name="messages")
    op.create_index(
        "ix_messages_status", "messages", ["direction", "status", "conversation_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_messages_status", table_name="messages")
    op.create_index("ix_messages_status", "messages", ["direction", "status"], unique=False)
