def test_health_without_build_metadata(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": "unknown",
        "revision": "unknown",
        "built": "unknown",
    }


def test_health_reports_build_metadata(client, monkeypatch):
    monkeypatch.setenv("APP_VERSION", "0.4.0")
    monkeypatch.setenv("APP_REVISION", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("APP_BUILT", "2025-01-02T03:04:05Z")
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "version": "0.4.0",
        "revision": "0123456789abcdef0123456789abcdef01234567",
        "built": "2025-01-02T03:04:05Z",
    }


def test_health_treats_blank_values_as_unknown(client, monkeypatch):
    monkeypatch.setenv("APP_VERSION", "  ")
    assert client.get("/health").json()["version"] == "unknown"


def test_health_is_json(client):
    response = client.get("/health")
    assert response.headers["content-type"].startswith("application/json")
