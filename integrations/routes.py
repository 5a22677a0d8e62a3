"""HTTP API of webhooks: ``/v1/webhooks`` (admin). Secrets appear only in the answers of creation and
``rotate-secret``.

Who may call: an admin's Bearer token. The seed has no API-client credentials yet, so ``client_id``
is a label an admin assigns; per-client access belongs with API clients when they exist.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Request, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from integrations import service
from integrations.config import WebhookConfig
from integrations.schemas import (
    DeliveryOut,
    DeliveryStatus,
    EventTypesOut,
    StatsOut,
    WebhookCreate,
    WebhookOut,
    WebhookStatus,
    WebhookUpdate,
    WebhookWithSecret,
)
from integrations.workflows import routes as workflow_routes
from kernel.auth import require_role
from kernel.crypto import SecretBox, secret_key
from kernel.deps import CurrentUser, DbConn
from kernel.pagination import DEFAULT_PAGE_SIZE, CursorParam, LimitParam, Page
from kernel.resources import NO_NUL, ResourceController

__all__ = ["on_shutdown", "on_startup", "route_handlers"]

ClientParam = Annotated[str | None, QueryParameter(max_length=255, pattern=NO_NUL)]


def _box(request: Request[Any, Any, Any]) -> SecretBox:
    box: SecretBox = request.app.state.webhook_box
    return box


def _config(request: Request[Any, Any, Any]) -> WebhookConfig:
    config: WebhookConfig = request.app.state.webhook_config
    return config


class WebhooksController(ResourceController):
    """Webhook endpoints, their deliveries and the event catalogue (admin)."""

    path = "/v1/webhooks"
    tags = ["webhooks"]

    @post("/", status_code=201)
    async def create(
        self,
        request: Request[Any, Any, Any],
        conn: DbConn,
        current_user: CurrentUser,
        data: JSONBody[WebhookCreate],
    ) -> WebhookWithSecret:
        """Create an endpoint; the answer holds its signing secret, shown this once."""
        require_role(current_user, "admin")
        return await service.create(conn, _box(request), _config(request), data)

    @get("/")
    async def list_all(
        self,
        conn: DbConn,
        current_user: CurrentUser,
        client_id: ClientParam = None,
        status: FromQuery[WebhookStatus | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_PAGE_SIZE,
    ) -> Page[WebhookOut]:
        """Endpoints, newest first, optionally of one ``client_id`` or one ``status``."""
        require_role(current_user, "admin")
        return await service.list_webhooks(
            conn, cursor=cursor, limit=limit, client_id=client_id, status=status
        )

    @get("/event-types")
    async def event_types(self, current_user: CurrentUser) -> EventTypesOut:
        """The event catalogue, with the JSON schema of each body."""
        require_role(current_user, "admin")
        return service.event_types()

    @get("/stats")
    async def stats(
        self, request: Request[Any, Any, Any], conn: DbConn, current_user: CurrentUser
    ) -> StatsOut:
        """Deliveries waiting and in flight, the oldest due one's age, events not yet fanned out, and
        this process's attempts by outcome with latency quantiles."""
        require_role(current_user, "admin")
        dispatcher = getattr(request.app.state, "webhook_dispatcher", None)
        return await service.stats(conn, dispatcher.metrics.snapshot() if dispatcher else None)

    @get("/{webhook_id:uuid}")
    async def get_one(
        self, webhook_id: FromPath[uuid.UUID], conn: DbConn, current_user: CurrentUser
    ) -> WebhookOut:
        """One endpoint (without its secret)."""
        require_role(current_user, "admin")
        return await service.get(conn, webhook_id)

    @patch("/{webhook_id:uuid}")
    async def update(
        self,
        request: Request[Any, Any, Any],
        webhook_id: FromPath[uuid.UUID],
        conn: DbConn,
        current_user: CurrentUser,
        data: JSONBody[WebhookUpdate],
    ) -> WebhookOut:
        """Change ``event_type``, ``target_url``, ``description`` or ``status`` (``active`` re-enables)."""
        require_role(current_user, "admin")
        return await service.update(conn, _config(request), webhook_id, data)

    @delete("/{webhook_id:uuid}")
    async def remove(self, webhook_id: FromPath[uuid.UUID], conn: DbConn, current_user: CurrentUser) -> None:
        """Delete an endpoint and its delivery log."""
        require_role(current_user, "admin")
        await service.delete(conn, webhook_id)

    @post("/{webhook_id:uuid}/rotate-secret", status_code=200)
    async def rotate(
        self,
        request: Request[Any, Any, Any],
        webhook_id: FromPath[uuid.UUID],
        conn: DbConn,
        current_user: CurrentUser,
    ) -> WebhookWithSecret:
        """A new signing secret, shown this once; the old one also signs for 24 hours."""
        require_role(current_user, "admin")
        return await service.rotate(conn, _box(request), _config(request), webhook_id)

    @get("/{webhook_id:uuid}/deliveries")
    async def deliveries(
        self,
        webhook_id: FromPath[uuid.UUID],
        conn: DbConn,
        current_user: CurrentUser,
        status: FromQuery[DeliveryStatus | None] = None,
        cursor: CursorParam = None,
        limit: LimitParam = DEFAULT_PAGE_SIZE,
    ) -> Page[DeliveryOut]:
        """The endpoint's deliveries, newest first, optionally in one ``status``."""
        require_role(current_user, "admin")
        return await service.deliveries(conn, webhook_id, status=status, cursor=cursor, limit=limit)

    @post("/{webhook_id:uuid}/deliveries/{delivery_id:uuid}/retry", status_code=202)
    async def retry(
        self,
        webhook_id: FromPath[uuid.UUID],
        delivery_id: FromPath[uuid.UUID],
        conn: DbConn,
        current_user: CurrentUser,
    ) -> DeliveryOut:
        """Send a delivered or failed delivery again, now, with the same ``webhook-id``."""
        require_role(current_user, "admin")
        return await service.retry(conn, webhook_id, delivery_id)

    @post("/{webhook_id:uuid}/test", status_code=202)
    async def test(
        self, webhook_id: FromPath[uuid.UUID], conn: DbConn, current_user: CurrentUser
    ) -> DeliveryOut:
        """Queue a ``webhook.test`` event for this endpoint."""
        require_role(current_user, "admin")
        return await service.send_test(conn, webhook_id)


async def on_startup(app: Any) -> None:
    """The delivery settings and the box that seals secrets (its key from settings or ``.data/``)."""
    app.state.webhook_config = WebhookConfig.from_env()
    app.state.webhook_box = SecretBox(secret_key(app.state.settings.data_dir))


async def on_shutdown(app: Any) -> None:
    """Stop this process's dispatcher, if it runs one (``jobs``)."""
    dispatcher = getattr(app.state, "webhook_dispatcher", None)
    if dispatcher is not None:
        await dispatcher.stop()


route_handlers: list[Any] = [WebhooksController, *workflow_routes.route_handlers]
