"""Seed schema: the 20 tables of docs/seed/database-schema.md, with the event tables partitioned.

Deviations the seed does not dictate are documented in docs/schema.md: composite primary keys and the
carried ``timestamp`` on the partitioned tables, indexes on every foreign key column (the seed's
"all foreign key columns are indexed"), one preferences row per user, and a case-insensitive email index.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Monthly partitions created up front: the current month, PREMAKE months ahead and BACKFILL months back.
# Anything outside lands in the DEFAULT partition, which the retention job drains (docs/schema.md).
PREMAKE = 3
BACKFILL = 1


def _create_initial_partitions() -> None:
    for parent in ("analytics_events", "event_properties"):
        op.execute(f"CREATE TABLE {parent}_default PARTITION OF {parent} DEFAULT")
        op.execute(
            f"""
            DO $$
            DECLARE m date;
            BEGIN
              FOR m IN SELECT generate_series(
                  date_trunc('month', now() AT TIME ZONE 'UTC') - interval '{BACKFILL} month',
                  date_trunc('month', now() AT TIME ZONE 'UTC') + interval '{PREMAKE} month',
                  interval '1 month')::date
              LOOP
                EXECUTE format(
                  'CREATE TABLE IF NOT EXISTS %I PARTITION OF {parent} FOR VALUES FROM (%L) TO (%L)',
                  '{parent}_p' || to_char(m, 'YYYY_MM'), m, (m + interval '1 month')::date);
              END LOOP;
            END $$;
            """
        )


def upgrade() -> None:
    op.create_table(
        "ab_tests",
        sa.Column("test_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.PrimaryKeyConstraint("test_id", name=op.f("pk_ab_tests")),
        sa.UniqueConstraint("name", name=op.f("uq_ab_tests_name")),
    )
    op.create_index("ix_ab_tests_end_date", "ab_tests", ["end_date"], unique=False)
    op.create_index("ix_ab_tests_start_date", "ab_tests", ["start_date"], unique=False)
    op.create_index("ix_ab_tests_status", "ab_tests", ["status"], unique=False)
    op.create_table(
        "users",
        sa.Column("user_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("phone_number", sa.String(length=20), nullable=True),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("time_of_birth", sa.Time(), nullable=True),
        sa.Column("place_of_birth", sa.String(length=255), nullable=True),
        sa.Column("subscription_tier", sa.String(length=20), server_default="free", nullable=False),
        sa.Column("role", sa.String(length=20), server_default="user", nullable=False),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("last_login_at", postgresql.TIMESTAMP(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_index("ix_users_status", "users", ["status"], unique=False)
    op.create_index("ix_users_subscription_tier", "users", ["subscription_tier"], unique=False)
    op.create_index("uq_users_email_lower", "users", [sa.literal_column("lower(email)")], unique=True)
    op.create_table(
        "webhooks",
        sa.Column("webhook_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("target_url", sa.String(length=255), nullable=False),
        sa.Column("secret", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.PrimaryKeyConstraint("webhook_id", name=op.f("pk_webhooks")),
    )
    op.create_index("ix_webhooks_client_id", "webhooks", ["client_id"], unique=False)
    op.create_index("ix_webhooks_event_type", "webhooks", ["event_type"], unique=False)
    op.create_index("ix_webhooks_status", "webhooks", ["status"], unique=False)
    op.create_table(
        "workflows",
        sa.Column("workflow_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("trigger_type", sa.String(length=50), nullable=False),
        sa.Column(
            "trigger_config",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.PrimaryKeyConstraint("workflow_id", name=op.f("pk_workflows")),
    )
    op.create_index("ix_workflows_status", "workflows", ["status"], unique=False)
    op.create_index("ix_workflows_trigger_type", "workflows", ["trigger_type"], unique=False)
    op.create_table(
        "ab_test_variants",
        sa.Column("variant_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("test_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("traffic_percentage", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["ab_tests.test_id"],
            name=op.f("fk_ab_test_variants_test_id_ab_tests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("variant_id", name=op.f("pk_ab_test_variants")),
    )
    op.create_index("ix_ab_test_variants_name", "ab_test_variants", ["name"], unique=False)
    op.create_index(op.f("ix_ab_test_variants_test_id"), "ab_test_variants", ["test_id"], unique=False)
    op.create_table(
        "analytics_events",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("event_name", sa.String(length=100), nullable=False),
        sa.Column("event_category", sa.String(length=50), nullable=False),
        sa.Column("device_id", sa.String(length=255), nullable=True),
        sa.Column("session_id", sa.String(length=255), nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=255), nullable=True),
        sa.Column("timestamp", postgresql.TIMESTAMP(), nullable=False),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.user_id"],
            name=op.f("fk_analytics_events_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("event_id", "timestamp", name=op.f("pk_analytics_events")),
        postgresql_partition_by='RANGE ("timestamp")',
    )
    op.create_index(
        "ix_analytics_events_event_category", "analytics_events", ["event_category"], unique=False
    )
    op.create_index("ix_analytics_events_event_name", "analytics_events", ["event_name"], unique=False)
    op.create_index("ix_analytics_events_timestamp", "analytics_events", ["timestamp"], unique=False)
    op.create_index(op.f("ix_analytics_events_user_id"), "analytics_events", ["user_id"], unique=False)
    op.create_table(
        "businesses",
        sa.Column("business_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("registration_date", sa.Date(), nullable=True),
        sa.Column("registration_time", sa.Time(), nullable=True),
        sa.Column("registration_place", sa.String(length=255), nullable=True),
        sa.Column("industry", sa.String(length=100), nullable=True),
        sa.Column("size", sa.String(length=50), nullable=True),
        sa.Column("logo_url", sa.String(length=255), nullable=True),
        sa.Column("website", sa.String(length=255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_businesses_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("business_id", name=op.f("pk_businesses")),
    )
    op.create_index("ix_businesses_industry", "businesses", ["industry"], unique=False)
    op.create_index("ix_businesses_name", "businesses", ["name"], unique=False)
    op.create_index(op.f("ix_businesses_user_id"), "businesses", ["user_id"], unique=False)
    op.create_table(
        "notifications",
        sa.Column("notification_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("read", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("sent_at", postgresql.TIMESTAMP(), nullable=True),
        sa.Column("read_at", postgresql.TIMESTAMP(), nullable=True),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_notifications_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("notification_id", name=op.f("pk_notifications")),
    )
    op.create_index("ix_notifications_read", "notifications", ["read"], unique=False)
    op.create_index("ix_notifications_sent_at", "notifications", ["sent_at"], unique=False)
    op.create_index("ix_notifications_status", "notifications", ["status"], unique=False)
    op.create_index("ix_notifications_type", "notifications", ["type"], unique=False)
    op.create_index(op.f("ix_notifications_user_id"), "notifications", ["user_id"], unique=False)
    op.create_table(
        "scheduled_notifications",
        sa.Column("schedule_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("scheduled_time", postgresql.TIMESTAMP(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.user_id"],
            name=op.f("fk_scheduled_notifications_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("schedule_id", name=op.f("pk_scheduled_notifications")),
    )
    op.create_index(
        "ix_scheduled_notifications_scheduled_time",
        "scheduled_notifications",
        ["scheduled_time"],
        unique=False,
    )
    op.create_index("ix_scheduled_notifications_status", "scheduled_notifications", ["status"], unique=False)
    op.create_index(
        op.f("ix_scheduled_notifications_user_id"), "scheduled_notifications", ["user_id"], unique=False
    )
    op.create_table(
        "subscriptions",
        sa.Column("subscription_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("plan_id", sa.String(length=50), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("auto_renew", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("payment_method", sa.String(length=50), nullable=True),
        sa.Column("payment_provider", sa.String(length=50), nullable=True),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_subscriptions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_subscriptions")),
    )
    op.create_index("ix_subscriptions_end_date", "subscriptions", ["end_date"], unique=False)
    op.create_index("ix_subscriptions_plan_id", "subscriptions", ["plan_id"], unique=False)
    op.create_index("ix_subscriptions_status", "subscriptions", ["status"], unique=False)
    op.create_index(op.f("ix_subscriptions_user_id"), "subscriptions", ["user_id"], unique=False)
    op.create_table(
        "user_devices",
        sa.Column("device_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("device_token", sa.String(length=255), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("device_model", sa.String(length=100), nullable=True),
        sa.Column("os_version", sa.String(length=50), nullable=True),
        sa.Column("app_version", sa.String(length=50), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("last_used_at", postgresql.TIMESTAMP(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_user_devices_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_user_devices")),
    )
    op.create_index("ix_user_devices_device_token", "user_devices", ["device_token"], unique=False)
    op.create_index("ix_user_devices_platform", "user_devices", ["platform"], unique=False)
    op.create_index(op.f("ix_user_devices_user_id"), "user_devices", ["user_id"], unique=False)
    op.create_table(
        "user_preferences",
        sa.Column("preference_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column(
            "notification_preferences",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "theme_preferences",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("language", sa.String(length=10), server_default="en", nullable=False),
        sa.Column("timezone", sa.String(length=50), server_default="UTC", nullable=False),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_user_preferences_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("preference_id", name=op.f("pk_user_preferences")),
        sa.UniqueConstraint("user_id", name=op.f("uq_user_preferences_user_id")),
    )
    op.create_index("ix_user_preferences_language", "user_preferences", ["language"], unique=False)
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("webhook_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "queued_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("processing_started_at", postgresql.TIMESTAMP(), nullable=True),
        sa.Column("delivered_at", postgresql.TIMESTAMP(), nullable=True),
        sa.Column("failed_at", postgresql.TIMESTAMP(), nullable=True),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.webhook_id"],
            name=op.f("fk_webhook_deliveries_webhook_id_webhooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index("ix_webhook_deliveries_event_type", "webhook_deliveries", ["event_type"], unique=False)
    op.create_index("ix_webhook_deliveries_queued_at", "webhook_deliveries", ["queued_at"], unique=False)
    op.create_index("ix_webhook_deliveries_status", "webhook_deliveries", ["status"], unique=False)
    op.create_index(
        op.f("ix_webhook_deliveries_webhook_id"), "webhook_deliveries", ["webhook_id"], unique=False
    )
    op.create_table(
        "workflow_executions",
        sa.Column("execution_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("workflow_id", sa.UUID(), nullable=False),
        sa.Column(
            "trigger_data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "variables",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "started_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("completed_at", postgresql.TIMESTAMP(), nullable=True),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.workflow_id"],
            name=op.f("fk_workflow_executions_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("execution_id", name=op.f("pk_workflow_executions")),
    )
    op.create_index(
        "ix_workflow_executions_completed_at", "workflow_executions", ["completed_at"], unique=False
    )
    op.create_index("ix_workflow_executions_started_at", "workflow_executions", ["started_at"], unique=False)
    op.create_index("ix_workflow_executions_status", "workflow_executions", ["status"], unique=False)
    op.create_index(
        op.f("ix_workflow_executions_workflow_id"), "workflow_executions", ["workflow_id"], unique=False
    )
    op.create_table(
        "ab_test_assignments",
        sa.Column("assignment_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("test_id", sa.UUID(), nullable=False),
        sa.Column("variant_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column(
            "assigned_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("converted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("converted_at", postgresql.TIMESTAMP(), nullable=True),
        sa.ForeignKeyConstraint(
            ["test_id"],
            ["ab_tests.test_id"],
            name=op.f("fk_ab_test_assignments_test_id_ab_tests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.user_id"],
            name=op.f("fk_ab_test_assignments_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["ab_test_variants.variant_id"],
            name=op.f("fk_ab_test_assignments_variant_id_ab_test_variants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("assignment_id", name=op.f("pk_ab_test_assignments")),
        sa.UniqueConstraint("test_id", "user_id", name="uq_ab_test_assignments_test_id_user_id"),
    )
    op.create_index("ix_ab_test_assignments_converted", "ab_test_assignments", ["converted"], unique=False)
    op.create_index(op.f("ix_ab_test_assignments_user_id"), "ab_test_assignments", ["user_id"], unique=False)
    op.create_index(
        op.f("ix_ab_test_assignments_variant_id"), "ab_test_assignments", ["variant_id"], unique=False
    )
    op.create_table(
        "business_analyses",
        sa.Column("analysis_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("business_id", sa.UUID(), nullable=False),
        sa.Column("analysis_type", sa.String(length=50), nullable=False),
        sa.Column("chart_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("detailed_analysis", sa.Text(), nullable=True),
        sa.Column("recommendations", sa.Text(), nullable=True),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.business_id"],
            name=op.f("fk_business_analyses_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("analysis_id", name=op.f("pk_business_analyses")),
    )
    op.create_index(
        "ix_business_analyses_analysis_type", "business_analyses", ["analysis_type"], unique=False
    )
    op.create_index(
        op.f("ix_business_analyses_business_id"), "business_analyses", ["business_id"], unique=False
    )
    op.create_table(
        "event_properties",
        sa.Column("property_id", sa.UUID(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("property_name", sa.String(length=100), nullable=False),
        sa.Column("property_value", sa.Text(), nullable=False),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("timestamp", postgresql.TIMESTAMP(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id", "timestamp"],
            ["analytics_events.event_id", "analytics_events.timestamp"],
            name="fk_event_properties_event_id_analytics_events",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("property_id", "timestamp", name=op.f("pk_event_properties")),
        postgresql_partition_by='RANGE ("timestamp")',
    )
    op.create_index("ix_event_properties_event_id", "event_properties", ["event_id"], unique=False)
    op.create_index("ix_event_properties_property_name", "event_properties", ["property_name"], unique=False)
    op.create_table(
        "reports",
        sa.Column("report_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("business_id", sa.UUID(), nullable=True),
        sa.Column("report_type", sa.String(length=50), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("generated_date", sa.Date(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="active", nullable=False),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.business_id"],
            name=op.f("fk_reports_business_id_businesses"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.user_id"], name=op.f("fk_reports_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("report_id", name=op.f("pk_reports")),
    )
    op.create_index(op.f("ix_reports_business_id"), "reports", ["business_id"], unique=False)
    op.create_index("ix_reports_generated_date", "reports", ["generated_date"], unique=False)
    op.create_index("ix_reports_report_type", "reports", ["report_type"], unique=False)
    op.create_index("ix_reports_status", "reports", ["status"], unique=False)
    op.create_index(op.f("ix_reports_user_id"), "reports", ["user_id"], unique=False)
    op.create_table(
        "workflow_execution_steps",
        sa.Column("step_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("execution_id", sa.UUID(), nullable=False),
        sa.Column("step_name", sa.String(length=255), nullable=False),
        sa.Column("step_type", sa.String(length=50), nullable=False),
        sa.Column(
            "input",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="pending", nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "started_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("completed_at", postgresql.TIMESTAMP(), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["workflow_executions.execution_id"],
            name=op.f("fk_workflow_execution_steps_execution_id_workflow_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("step_id", name=op.f("pk_workflow_execution_steps")),
    )
    op.create_index(
        op.f("ix_workflow_execution_steps_execution_id"),
        "workflow_execution_steps",
        ["execution_id"],
        unique=False,
    )
    op.create_index(
        "ix_workflow_execution_steps_started_at", "workflow_execution_steps", ["started_at"], unique=False
    )
    op.create_index(
        "ix_workflow_execution_steps_status", "workflow_execution_steps", ["status"], unique=False
    )
    op.create_index(
        "ix_workflow_execution_steps_step_type", "workflow_execution_steps", ["step_type"], unique=False
    )
    op.create_table(
        "report_sections",
        sa.Column("section_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("report_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("order", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", postgresql.TIMESTAMP(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.report_id"],
            name=op.f("fk_report_sections_report_id_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("section_id", name=op.f("pk_report_sections")),
    )
    op.create_index("ix_report_sections_order", "report_sections", ["order"], unique=False)
    op.create_index(op.f("ix_report_sections_report_id"), "report_sections", ["report_id"], unique=False)
    _create_initial_partitions()


def downgrade() -> None:
    op.drop_index(op.f("ix_report_sections_report_id"), table_name="report_sections")
    op.drop_index("ix_report_sections_order", table_name="report_sections")
    op.drop_table("report_sections")
    op.drop_index("ix_workflow_execution_steps_step_type", table_name="workflow_execution_steps")
    op.drop_index("ix_workflow_execution_steps_status", table_name="workflow_execution_steps")
    op.drop_index("ix_workflow_execution_steps_started_at", table_name="workflow_execution_steps")
    op.drop_index(op.f("ix_workflow_execution_steps_execution_id"), table_name="workflow_execution_steps")
    op.drop_table("workflow_execution_steps")
    op.drop_index(op.f("ix_reports_user_id"), table_name="reports")
    op.drop_index("ix_reports_status", table_name="reports")
    op.drop_index("ix_reports_report_type", table_name="reports")
    op.drop_index("ix_reports_generated_date", table_name="reports")
    op.drop_index(op.f("ix_reports_business_id"), table_name="reports")
    op.drop_table("reports")
    op.drop_index("ix_event_properties_property_name", table_name="event_properties")
    op.drop_index("ix_event_properties_event_id", table_name="event_properties")
    op.drop_table("event_properties")
    op.drop_index(op.f("ix_business_analyses_business_id"), table_name="business_analyses")
    op.drop_index("ix_business_analyses_analysis_type", table_name="business_analyses")
    op.drop_table("business_analyses")
    op.drop_index(op.f("ix_ab_test_assignments_variant_id"), table_name="ab_test_assignments")
    op.drop_index(op.f("ix_ab_test_assignments_user_id"), table_name="ab_test_assignments")
    op.drop_index("ix_ab_test_assignments_converted", table_name="ab_test_assignments")
    op.drop_table("ab_test_assignments")
    op.drop_index(op.f("ix_workflow_executions_workflow_id"), table_name="workflow_executions")
    op.drop_index("ix_workflow_executions_status", table_name="workflow_executions")
    op.drop_index("ix_workflow_executions_started_at", table_name="workflow_executions")
    op.drop_index("ix_workflow_executions_completed_at", table_name="workflow_executions")
    op.drop_table("workflow_executions")
    op.drop_index(op.f("ix_webhook_deliveries_webhook_id"), table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_status", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_queued_at", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_event_type", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_user_preferences_language", table_name="user_preferences")
    op.drop_table("user_preferences")
    op.drop_index(op.f("ix_user_devices_user_id"), table_name="user_devices")
    op.drop_index("ix_user_devices_platform", table_name="user_devices")
    op.drop_index("ix_user_devices_device_token", table_name="user_devices")
    op.drop_table("user_devices")
    op.drop_index(op.f("ix_subscriptions_user_id"), table_name="subscriptions")
    op.drop_index("ix_subscriptions_status", table_name="subscriptions")
    op.drop_index("ix_subscriptions_plan_id", table_name="subscriptions")
    op.drop_index("ix_subscriptions_end_date", table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_index(op.f("ix_scheduled_notifications_user_id"), table_name="scheduled_notifications")
    op.drop_index("ix_scheduled_notifications_status", table_name="scheduled_notifications")
    op.drop_index("ix_scheduled_notifications_scheduled_time", table_name="scheduled_notifications")
    op.drop_table("scheduled_notifications")
    op.drop_index(op.f("ix_notifications_user_id"), table_name="notifications")
    op.drop_index("ix_notifications_type", table_name="notifications")
    op.drop_index("ix_notifications_status", table_name="notifications")
    op.drop_index("ix_notifications_sent_at", table_name="notifications")
    op.drop_index("ix_notifications_read", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index(op.f("ix_businesses_user_id"), table_name="businesses")
    op.drop_index("ix_businesses_name", table_name="businesses")
    op.drop_index("ix_businesses_industry", table_name="businesses")
    op.drop_table("businesses")
    op.drop_index(op.f("ix_analytics_events_user_id"), table_name="analytics_events")
    op.drop_index("ix_analytics_events_timestamp", table_name="analytics_events")
    op.drop_index("ix_analytics_events_event_name", table_name="analytics_events")
    op.drop_index("ix_analytics_events_event_category", table_name="analytics_events")
    op.drop_table("analytics_events")
    op.drop_index(op.f("ix_ab_test_variants_test_id"), table_name="ab_test_variants")
    op.drop_index("ix_ab_test_variants_name", table_name="ab_test_variants")
    op.drop_table("ab_test_variants")
    op.drop_index("ix_workflows_trigger_type", table_name="workflows")
    op.drop_index("ix_workflows_status", table_name="workflows")
    op.drop_table("workflows")
    op.drop_index("ix_webhooks_status", table_name="webhooks")
    op.drop_index("ix_webhooks_event_type", table_name="webhooks")
    op.drop_index("ix_webhooks_client_id", table_name="webhooks")
    op.drop_table("webhooks")
    op.drop_index("uq_users_email_lower", table_name="users")
    op.drop_index("ix_users_subscription_tier", table_name="users")
    op.drop_index("ix_users_status", table_name="users")
    op.drop_table("users")
    op.drop_index("ix_ab_tests_status", table_name="ab_tests")
    op.drop_index("ix_ab_tests_start_date", table_name="ab_tests")
    op.drop_index("ix_ab_tests_end_date", table_name="ab_tests")
    op.drop_table("ab_tests")
