"""Tables of the core API: users and their resources, businesses, reports, notifications, integrations.

Column names, types, nullability and defaults follow ``docs/seed/database-schema.md`` exactly;
additions and deviations are listed in ``docs/schema.md``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    Time,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB, TIMESTAMP, UUID
from sqlalchemy.orm import Mapped, mapped_column

from core_api.db import Base

__all__ = [
    "ApiSource",
    "AuditLog",
    "Business",
    "BusinessAnalysis",
    "LoginThrottle",
    "Notification",
    "Report",
    "ReportSection",
    "ScheduledNotification",
    "Subscription",
    "User",
    "UserDevice",
    "UserPreference",
    "Webhook",
    "WebhookDelivery",
    "Workflow",
    "WorkflowExecution",
    "WorkflowExecutionStep",
]

NOW = func.current_timestamp()
EMPTY_JSON = text("'{}'::jsonb")


def _pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid())


def _created() -> Mapped[dt.datetime]:
    return mapped_column(TIMESTAMP(), nullable=False, server_default=NOW)


def _user_fk(ondelete: str = "CASCADE") -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), ForeignKey("users.user_id", ondelete=ondelete), nullable=False, index=True
    )


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("ix_users_subscription_tier", "subscription_tier"),
        Index("ix_users_status", "status"),
        # Emails are unique case-insensitively; the seed's plain unique index stays too.
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
    )

    user_id: Mapped[uuid.UUID] = _pk()
    email: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    first_name: Mapped[str] = mapped_column(String(100), nullable=False)
    last_name: Mapped[str] = mapped_column(String(100), nullable=False)
    phone_number: Mapped[str | None] = mapped_column(String(20))
    date_of_birth: Mapped[dt.date | None] = mapped_column(Date)
    time_of_birth: Mapped[dt.time | None] = mapped_column(Time)
    place_of_birth: Mapped[str | None] = mapped_column(String(255))
    subscription_tier: Mapped[str] = mapped_column(String(20), nullable=False, server_default="free")
    role: Mapped[str] = mapped_column(String(20), nullable=False, server_default="user")
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="active")
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()
    last_login_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())


class UserDevice(Base):
    __tablename__ = "user_devices"
    __table_args__ = (
        Index("ix_user_devices_device_token", "device_token"),
        Index("ix_user_devices_platform", "platform"),
        # Addition (core API): a push token is registered once per user, so a refresh is an upsert.
        Index("uq_user_devices_user_id_device_token", "user_id", "device_token", unique=True),
    )

    device_id: Mapped[uuid.UUID] = _pk()
    user_id: Mapped[uuid.UUID] = _user_fk()
    device_token: Mapped[str] = mapped_column(String(255), nullable=False)
    platform: Mapped[str] = mapped_column(String(20), nullable=False)
    device_model: Mapped[str | None] = mapped_column(String(100))
    os_version: Mapped[str | None] = mapped_column(String(50))
    app_version: Mapped[str | None] = mapped_column(String(50))
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()
    last_used_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        Index("ix_subscriptions_plan_id", "plan_id"),
        Index("ix_subscriptions_status", "status"),
        Index("ix_subscriptions_end_date", "end_date"),
    )

    subscription_id: Mapped[uuid.UUID] = _pk()
    user_id: Mapped[uuid.UUID] = _user_fk()
    plan_id: Mapped[str] = mapped_column(String(50), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    start_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    auto_renew: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("true"))
    payment_method: Mapped[str | None] = mapped_column(String(50))
    payment_provider: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class UserPreference(Base):
    __tablename__ = "user_preferences"
    __table_args__ = (Index("ix_user_preferences_language", "language"),)

    preference_id: Mapped[uuid.UUID] = _pk()
    # One preferences row per user: the FK index is unique (documented deviation).
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False, unique=True
    )
    notification_preferences: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=EMPTY_JSON
    )
    theme_preferences: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=EMPTY_JSON
    )
    language: Mapped[str] = mapped_column(String(10), nullable=False, server_default="en")
    timezone: Mapped[str] = mapped_column(String(50), nullable=False, server_default="UTC")
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class Business(Base):
    __tablename__ = "businesses"
    __table_args__ = (
        Index("ix_businesses_name", "name"),
        Index("ix_businesses_industry", "industry"),
    )

    business_id: Mapped[uuid.UUID] = _pk()
    user_id: Mapped[uuid.UUID] = _user_fk()
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    registration_date: Mapped[dt.date | None] = mapped_column(Date)
    registration_time: Mapped[dt.time | None] = mapped_column(Time)
    registration_place: Mapped[str | None] = mapped_column(String(255))
    industry: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[str | None] = mapped_column(String(50))
    logo_url: Mapped[str | None] = mapped_column(String(255))
    website: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class BusinessAnalysis(Base):
    __tablename__ = "business_analyses"
    __table_args__ = (Index("ix_business_analyses_analysis_type", "analysis_type"),)

    analysis_id: Mapped[uuid.UUID] = _pk()
    business_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("businesses.business_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    analysis_type: Mapped[str] = mapped_column(String(50), nullable=False)
    chart_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    summary: Mapped[str | None] = mapped_column(Text)
    detailed_analysis: Mapped[str | None] = mapped_column(Text)
    recommendations: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class Report(Base):
    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_report_type", "report_type"),
        Index("ix_reports_generated_date", "generated_date"),
        Index("ix_reports_status", "status"),
    )

    report_id: Mapped[uuid.UUID] = _pk()
    user_id: Mapped[uuid.UUID] = _user_fk()
    business_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("businesses.business_id", ondelete="SET NULL"), index=True
    )
    report_type: Mapped[str] = mapped_column(String(50), nullable=False)
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    summary: Mapped[str | None] = mapped_column(Text)
    generated_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    period_start: Mapped[dt.date | None] = mapped_column(Date)
    period_end: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="active")
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class ReportSection(Base):
    __tablename__ = "report_sections"
    __table_args__ = (Index("ix_report_sections_order", "order"),)

    section_id: Mapped[uuid.UUID] = _pk()
    report_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("reports.report_id", ondelete="CASCADE"), nullable=False, index=True
    )
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    order: Mapped[int] = mapped_column("order", Integer, nullable=False)
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_type", "type"),
        Index("ix_notifications_status", "status"),
        Index("ix_notifications_read", "read"),
        Index("ix_notifications_sent_at", "sent_at"),
        # Addition (core API): a user's notifications newest first, the keyset order of the list.
        Index("ix_notifications_user_id_created_at", "user_id", "created_at", "notification_id"),
    )

    notification_id: Mapped[uuid.UUID] = _pk()
    user_id: Mapped[uuid.UUID] = _user_fk()
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_JSON)
    type: Mapped[str] = mapped_column(String(50), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="pending")
    read: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    sent_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())
    read_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class ScheduledNotification(Base):
    __tablename__ = "scheduled_notifications"
    __table_args__ = (
        Index("ix_scheduled_notifications_scheduled_time", "scheduled_time"),
        Index("ix_scheduled_notifications_status", "status"),
        # Addition (core API): the delivery job's scan for due rows touches only pending ones.
        Index(
            "ix_scheduled_notifications_due",
            "scheduled_time",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    schedule_id: Mapped[uuid.UUID] = _pk()
    user_id: Mapped[uuid.UUID] = _user_fk()
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_JSON)
    scheduled_time: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="pending")
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class Webhook(Base):
    __tablename__ = "webhooks"
    __table_args__ = (
        Index("ix_webhooks_client_id", "client_id"),
        Index("ix_webhooks_event_type", "event_type"),
        Index("ix_webhooks_status", "status"),
    )

    webhook_id: Mapped[uuid.UUID] = _pk()
    client_id: Mapped[str] = mapped_column(String(255), nullable=False)
    event_type: Mapped[str] = mapped_column(String(100), nullable=False)
    target_url: Mapped[str] = mapped_column(String(255), nullable=False)
    secret: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="active")
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_event_type", "event_type"),
        Index("ix_webhook_deliveries_status", "status"),
        Index("ix_webhook_deliveries_queued_at", "queued_at"),
    )

    delivery_id: Mapped[uuid.UUID] = _pk()
    webhook_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("webhooks.webhook_id", ondelete="CASCADE"), nullable=False, index=True
    )
    event_type: Mapped[str] = mapped_column(String(100), nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="pending")
    response_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    queued_at: Mapped[dt.datetime] = _created()
    processing_started_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())
    delivered_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())
    failed_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())


class Workflow(Base):
    __tablename__ = "workflows"
    __table_args__ = (
        Index("ix_workflows_trigger_type", "trigger_type"),
        Index("ix_workflows_status", "status"),
    )

    workflow_id: Mapped[uuid.UUID] = _pk()
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    trigger_type: Mapped[str] = mapped_column(String(50), nullable=False)
    trigger_config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_JSON)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="active")
    created_at: Mapped[dt.datetime] = _created()
    updated_at: Mapped[dt.datetime] = _created()


class WorkflowExecution(Base):
    __tablename__ = "workflow_executions"
    __table_args__ = (
        Index("ix_workflow_executions_status", "status"),
        Index("ix_workflow_executions_started_at", "started_at"),
        Index("ix_workflow_executions_completed_at", "completed_at"),
    )

    execution_id: Mapped[uuid.UUID] = _pk()
    workflow_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("workflows.workflow_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    trigger_data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_JSON)
    variables: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_JSON)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="pending")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = _created()
    completed_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())


class WorkflowExecutionStep(Base):
    __tablename__ = "workflow_execution_steps"
    __table_args__ = (
        Index("ix_workflow_execution_steps_step_type", "step_type"),
        Index("ix_workflow_execution_steps_status", "status"),
        Index("ix_workflow_execution_steps_started_at", "started_at"),
    )

    step_id: Mapped[uuid.UUID] = _pk()
    execution_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("workflow_executions.execution_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    step_name: Mapped[str] = mapped_column(String(255), nullable=False)
    step_type: Mapped[str] = mapped_column(String(50), nullable=False)
    input: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_JSON)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="pending")
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = _created()
    completed_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())


# --- Additions (not in the seed; see docs/schema.md) -------------------------------------------


class AuditLog(Base):
    """Security-relevant actions. Retained 6 months, like the seed's logs and audit trails."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_created_at", "created_at"),
        Index("ix_audit_log_actor_user_id", "actor_user_id"),
        Index("ix_audit_log_action", "action"),
    )

    audit_id: Mapped[uuid.UUID] = _pk()
    # No FK: the trail must outlive the accounts it mentions (an erasure is itself audited).
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    subject_id: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(50), nullable=False)
    ip_address: Mapped[str | None] = mapped_column(INET)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=EMPTY_JSON)
    created_at: Mapped[dt.datetime] = _created()


class ApiSource(Base):
    """A named event source (an app) and the SHA-256 of its write key; the key itself is never stored."""

    __tablename__ = "api_sources"

    source_id: Mapped[uuid.UUID] = _pk()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False, unique=True)
    key_prefix: Mapped[str] = mapped_column(String(12), nullable=False)
    created_at: Mapped[dt.datetime] = _created()
    revoked_at: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())


class LoginThrottle(Base):
    """Attempt counters with exponential backoff, shared by every app process.

    One row per key: the account (``acct:``), the account from one address (``acct-ip:``), one address
    (``ip:``), registrations per address (``reg-ip:``) and in all (``reg:``); keys hold hashes or
    addresses, never an email. ``window_start`` is the last counted attempt (a counter resets after a
    quiet window), ``blocked_until`` the end of the current backoff. Stale rows are deleted by a job.
    """

    __tablename__ = "login_throttle"
    __table_args__ = (Index("ix_login_throttle_window_start", "window_start"),)

    throttle_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(TIMESTAMP(), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    blocked_until: Mapped[dt.datetime | None] = mapped_column(TIMESTAMP())


class UserTokenVersion(Base):
    """A user's access-token generation: tokens carry it, and a bump (password change, status change,
    logout) ends every token issued before. No row means generation 0."""

    __tablename__ = "user_token_versions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    token_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    updated_at: Mapped[dt.datetime] = _created()
