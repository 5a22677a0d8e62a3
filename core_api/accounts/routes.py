"""HTTP routes of the accounts domain: ``/v1/auth``, ``/v1/users/me[/...]``, ``/v1/users``, ``/v1/subscriptions``."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Litestar, Request, Response, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody

from core_api.accounts import owned, repository, service, sessions
from core_api.accounts.schemas import (
    AdminUserUpdate,
    DeviceOut,
    DeviceRegister,
    DeviceUpdate,
    LoginRequest,
    PreferencesOut,
    PreferencesUpdate,
    RefreshRequest,
    RegisterRequest,
    SubscriptionCreate,
    SubscriptionOut,
    SubscriptionUpdate,
    TokenResponse,
    UserOut,
    UserUpdate,
)
from kernel.deps import CurrentUser, Db, DbConn
from kernel.owned import get_route, list_route, route
from kernel.resources import ResourceController, request_ip

__all__ = ["route_handlers"]


class AuthController(ResourceController):
    """Registration and login (no token needed)."""

    path = "/v1/auth"
    tags = ["auth"]

    @post("/register", summary="Create an account")
    async def register(
        self, data: JSONBody[RegisterRequest], db: Db, request: Request[Any, Any, Any]
    ) -> UserOut:
        """Create an account with the ``user`` role; emails are unique in their normal form.

        Rate-limited per address and in all (429). The password is hashed on the bounded pool with no
        connection held, and a taken email costs the same hash as a new one before its 409.
        """
        service.check_password_policy(data.password, data.email)
        settings = request.app.state.settings
        async with db.transaction() as conn:
            await service.reserve_registration(conn, settings, request_ip(request))
        password_hash = await request.app.state.hashing.hash(data.password)
        async with db.transaction() as conn:
            return await service.create_account(conn, data, password_hash)

    @post("/login", status_code=200, summary="Exchange email and password for an access token")
    async def login(
        self, data: JSONBody[LoginRequest], db: Db, request: Request[Any, Any, Any]
    ) -> TokenResponse:
        """A short-lived bearer token. Failed logins back off per account and address, per address, and
        (at a much higher count) per account (429)."""
        settings = request.app.state.settings
        attempt = service.LoginAttempt.of(data.email, request_ip(request))
        # Two short transactions, none held across the password hash: count the attempt (committed
        # at once, so other processes see it) and look the account up, then record the outcome.
        async with db.transaction() as conn:
            reservation = await service.reserve_login_attempt(conn, settings, attempt)
            user = await service.find_login_user(conn, attempt)
        checked = await service.check_password(request.app.state.hashing, user, data.password)
        async with db.transaction() as conn:
            outcome = await service.complete_login(conn, settings, attempt, reservation, user, checked)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.token is not None
        return outcome.token

    @post("/refresh", status_code=200, summary="Exchange a refresh token for a new token pair")
    async def refresh(
        self, data: JSONBody[RefreshRequest], db: Db, request: Request[Any, Any, Any]
    ) -> TokenResponse:
        """Rotate the refresh token: a new access token and the next refresh token; the old one is spent.
        Presenting a spent token again revokes every token of that login (401 ``invalid_refresh_token``)."""
        async with db.transaction() as conn:
            outcome = await sessions.refresh(conn, request.app.state.settings, data.refresh_token)
        # Raised after the commit, so that a reuse's revocation is kept.
        if outcome.error is not None:
            raise outcome.error
        assert outcome.token is not None
        return outcome.token

    @post("/logout", status_code=204, summary="End every access token of the caller")
    async def logout(self, conn: DbConn, current_user: CurrentUser, request: Request[Any, Any, Any]) -> None:
        """Sign out everywhere: every access and refresh token issued to the caller so far stops working."""
        await service.logout(conn, current_user, request_ip(request))


class MeController(ResourceController):
    """The caller's own account and the resources it owns."""

    path = "/v1/users/me"
    tags = ["users"]

    @get("/", summary="The caller's profile")
    async def get_me(self, conn: DbConn, current_user: CurrentUser) -> UserOut:
        """The caller's profile (never the password hash)."""
        return await service.get_user(conn, current_user, current_user.user_id)

    @patch("/", summary="Change the caller's profile")
    async def update_me(
        self,
        data: JSONBody[UserUpdate],
        conn: DbConn,
        current_user: CurrentUser,
        request: Request[Any, Any, Any],
    ) -> UserOut:
        """Change profile fields; ``password`` needs ``current_password``."""
        hashing = request.app.state.hashing
        return await service.update_me(conn, hashing, current_user, data, request_ip(request))

    @delete("/", summary="Erase the caller's account")
    async def erase_me(
        self, conn: DbConn, current_user: CurrentUser, request: Request[Any, Any, Any]
    ) -> None:
        """Erase the account and everything it owns; analytics events are kept, unlinked."""
        hooks = request.app.state.user_erased_hooks
        await service.erase_account(conn, current_user, request_ip(request), hooks)

    @route(get, "/preferences", owned.get_preferences, None, PreferencesOut)
    def get_preferences(self) -> None:
        """The caller's preferences

        Language, time zone and notification/theme settings.
        """

    @put("/preferences", summary="Save the caller's preferences")
    async def put_preferences(
        self, data: JSONBody[PreferencesUpdate], conn: DbConn, current_user: CurrentUser
    ) -> PreferencesOut:
        """Store the given fields (language and time zone are validated); omitted ones are kept."""
        return await owned.put_preferences(conn, current_user, data)

    @list_route(owned.devices, "/devices", by_user=False)
    def list_devices(self) -> None:
        """The caller's devices

        Registered push devices, newest first.
        """

    @post("/devices", summary="Register or refresh a push token")
    async def register_device(
        self, data: JSONBody[DeviceRegister], conn: DbConn, current_user: CurrentUser
    ) -> Response[DeviceOut]:
        """201 for a new token, 200 when an existing one is refreshed (reactivated, versions updated)."""
        device, created = await owned.register_device(conn, current_user, data)
        return Response(device, status_code=201 if created else 200)

    @get_route(owned.devices, "/devices/{device_id:uuid}")
    def get_device(self) -> None:
        """One of the caller's devices

        A device of the caller (404 for anyone else's).
        """

    @route(patch, "/devices/{device_id:uuid}", owned.update_device, DeviceUpdate, DeviceOut)
    def update_device(self) -> None:
        """Change one of the caller's devices

        New token, versions, or ``active``.
        """

    @route(delete, "/devices/{device_id:uuid}", owned.deactivate_device)
    def deactivate_device(self) -> None:
        """Deactivate one of the caller's devices

        Stop pushes to the device (``active`` = false; the row is kept).
        """

    @list_route(owned.my_subscriptions, "/subscriptions", by_user=False)
    def list_subscriptions(self) -> None:
        """The caller's subscriptions

        The caller's subscriptions, newest first.
        """

    @get_route(owned.my_subscriptions, "/subscriptions/{subscription_id:uuid}")
    def get_subscription(self) -> None:
        """One of the caller's subscriptions

        A subscription of the caller.
        """


class UsersController(ResourceController):
    """Accounts by id: admins read and manage every account; others see only their own."""

    path = "/v1/users"
    tags = ["users"]

    @list_route(service.users, by_user=False, role="admin")
    def list_users(self) -> None:
        """Every account (admin)

        Every account, newest first.
        """

    @route(get, "/{user_id:uuid}", service.get_user, None, UserOut)
    def get_user(self) -> None:
        """An account (admins: any; others: their own)

        An account's profile.
        """

    @patch("/{user_id:uuid}", summary="Change an account's role, status or tier (admin)")
    async def update_user(
        self,
        user_id: FromPath[uuid.UUID],
        data: JSONBody[AdminUserUpdate],
        conn: DbConn,
        current_user: CurrentUser,
        request: Request[Any, Any, Any],
    ) -> UserOut:
        """Role and status changes are written to the audit log."""
        return await service.admin_update_user(conn, current_user, user_id, data, request_ip(request))


class SubscriptionsController(ResourceController):
    """Subscriptions by id: admins create and update them; users read theirs under ``/v1/users/me``."""

    path = "/v1/subscriptions"
    tags = ["subscriptions"]

    @route(post, "/", owned.create_subscription, SubscriptionCreate, SubscriptionOut)
    def create(self) -> None:
        """Create a subscription for a user (admin)

        A new subscription row for ``user_id``.
        """

    @list_route(owned.subscriptions)
    def list_all(self) -> None:
        """Subscriptions (admins: everyone's, or one user's; others: their own)

        Newest first; ``user_id`` filters (admins only; anyone else sees only their own).
        """

    @get_route(owned.subscriptions, "/{subscription_id:uuid}")
    def get_one(self) -> None:
        """A subscription (admins: any; others: their own)

        One subscription.
        """

    @route(patch, "/{subscription_id:uuid}", owned.update_subscription, SubscriptionUpdate, SubscriptionOut)
    def update(self) -> None:
        """Change a subscription (admin)

        Plan, status, dates, renewal and payment fields.
        """


route_handlers: list[Any] = [AuthController, MeController, UsersController, SubscriptionsController]


async def on_startup(app: Litestar) -> None:
    """Register the account lookup every authenticated request makes (the kernel's ``load_auth_user``)."""
    app.state.account_lookup = repository.auth_row
