"""The app carries its context as a plain attribute, and in ``app.state`` as before."""

from __future__ import annotations

from starlette.requests import Request

from stageless.api import get_context
from stageless.api.context import ControlPlaneApp
from tests.api.conftest import Api


async def test_the_context_is_an_attribute_of_the_app_and_in_its_state(api: Api) -> None:
    app = api.app
    assert isinstance(app, ControlPlaneApp)
    assert app.ctx is app.state.ctx
    request = Request({"type": "http", "app": app, "headers": []})
    assert get_context(request) is app.ctx
