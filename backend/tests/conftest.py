import pytest
from fastapi.testclient import TestClient

from app.main import app

BUILD_VARS = ("APP_VERSION", "APP_REVISION", "APP_BUILT")


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    # Start every test from a clean slate, whatever the developer's shell exports.
    for name in BUILD_VARS:
        monkeypatch.delenv(name, raising=False)
    return TestClient(app)
