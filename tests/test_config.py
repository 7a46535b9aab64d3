"""Settings: precedence of the layers, *_FILE secrets, and production refusing weak secrets."""

from __future__ import annotations

import pytest

from config import ConfigError, load_settings
from security.encoding import b64url_encode

KEY = b64url_encode(bytes(range(32)))
STRONG = "k9!Qz-7xP2_mVb8wLr4TnYe6HsUa3DcFgJ"
PRODUCTION = {"TORCHGATE_JWT_SECRET": STRONG, "TORCHGATE_MASTER_KEY": KEY,
              "TORCHGATE_MODEL_KEYS": f"a:{KEY}"}


def test_defaults_then_toml_then_environment_then_overrides(tmp_path):
    toml = tmp_path / "gate.toml"
    toml.write_text('envelope_max_age = 60\nlogin_window = 30\nJWT_ISSUER = "from-toml"\n')
    environ = {**PRODUCTION, "TORCHGATE_CONFIG": str(toml), "TORCHGATE_LOGIN_WINDOW": "45"}
    settings = load_settings({"jwt_issuer": "from-override"}, environ=environ)
    assert settings.envelope_max_age == 60
    assert settings.login_window == 45
    assert settings.jwt_issuer == "from-override"
    assert settings.jwt_audience == "torchgate"


def test_secret_from_file(tmp_path):
    secret = tmp_path / "jwt"
    secret.write_text(STRONG + "\n")
    environ = {**PRODUCTION, "TORCHGATE_JWT_SECRET_FILE": str(secret)}
    del environ["TORCHGATE_JWT_SECRET"]
    assert load_settings(environ=environ).jwt_secret == STRONG


def test_model_keys_parse_with_and_without_padding():
    environ = {**PRODUCTION, "TORCHGATE_MODEL_KEYS": f"old:{KEY}=,new:{KEY}"}
    assert set(load_settings(environ=environ).model_keys) == {"old", "new"}


@pytest.mark.parametrize(("change", "named"), [
    ({"TORCHGATE_JWT_SECRET": None}, "TORCHGATE_JWT_SECRET"),
    ({"TORCHGATE_JWT_SECRET": "short"}, "TORCHGATE_JWT_SECRET"),
    ({"TORCHGATE_JWT_SECRET": "a" * 40}, "TORCHGATE_JWT_SECRET"),
    ({"TORCHGATE_MASTER_KEY": None}, "TORCHGATE_MASTER_KEY"),
    ({"TORCHGATE_MASTER_KEY": b64url_encode(b"x" * 16)}, "TORCHGATE_MASTER_KEY"),
    ({"TORCHGATE_MODEL_KEYS": None}, "TORCHGATE_MODEL_KEYS"),
    ({"TORCHGATE_MODEL_KEYS": "nokey"}, "TORCHGATE_MODEL_KEYS"),
    ({"TORCHGATE_ENV": "staging"}, "TORCHGATE_ENV"),
    ({"TORCHGATE_PAYLOAD_ENCRYPTION": "off"}, "TORCHGATE_PAYLOAD_ENCRYPTION"),
    ({"TORCHGATE_ENVELOPE_MAX_AGE": "soon"}, "TORCHGATE_ENVELOPE_MAX_AGE"),
    ({"TORCHGATE_JWT_ALGORITHM": "none"}, "TORCHGATE_JWT_ALGORITHM"),
])
def test_production_refuses_with_one_line_naming_the_setting(change, named):
    environ = {**PRODUCTION, **change}
    environ = {k: v for k, v in environ.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    message = str(caught.value)
    assert message.startswith(named + ":")
    assert "\n" not in message


def test_development_generates_secrets_once(tmp_path):
    environ = {"TORCHGATE_ENV": "development", "TORCHGATE_INSTANCE_DIR": str(tmp_path)}
    first = load_settings(environ=environ)
    second = load_settings(environ=environ)
    assert first.jwt_secret == second.jwt_secret and first.master_key == second.master_key
    assert (tmp_path / "dev-secrets.toml").stat().st_mode & 0o777 == 0o600


def test_unknown_setting_in_toml_is_refused(tmp_path):
    toml = tmp_path / "gate.toml"
    toml.write_text("jwt_secrte = 'typo'\n")
    with pytest.raises(ConfigError, match="JWT_SECRTE: unknown setting"):
        load_settings(environ={**PRODUCTION, "TORCHGATE_CONFIG": str(toml)})


def test_secrets_are_not_in_the_repr():
    settings = load_settings(environ=PRODUCTION)
    assert STRONG not in repr(settings)


@pytest.mark.parametrize(("variable", "hint"), [
    ("TORCHGATE_JWT_SECRTE", "did you mean TORCHGATE_JWT_SECRET?"),
    ("TORCHGATE_PAYLOAD_ENCRYPTON", "did you mean TORCHGATE_PAYLOAD_ENCRYPTION?"),
    ("TORCHGATE_MASTER_KEY_FIEL", "did you mean TORCHGATE_MASTER_KEY_FILE?"),
    ("TORCHGATE_NOTHING_LIKE_IT", "unknown setting in environment"),
])
def test_unknown_environment_variable_is_refused_naming_the_closest(variable, hint):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={**PRODUCTION, variable: "1"})
    assert str(caught.value).startswith(f"{variable}: unknown setting in environment")
    assert str(caught.value).endswith(hint)


def test_unknown_toml_key_names_the_closest_key(tmp_path):
    toml = tmp_path / "gate.toml"
    toml.write_text("envelope_max_aeg = 5\n")
    with pytest.raises(ConfigError, match=r"did you mean envelope_max_age\?$"):
        load_settings(environ={**PRODUCTION, "TORCHGATE_CONFIG": str(toml)})


def test_variables_of_gunicorn_and_of_the_client_are_known():
    environ = {**PRODUCTION, "TORCHGATE_BIND": "127.0.0.1:9", "TORCHGATE_WORKERS": "2",
               "TORCHGATE_URL": "http://x", "TORCHGATE_PASSWORD_FILE": "/nowhere",
               "TORCHGATE_TEST_REDIS_URL": "redis://x"}
    assert load_settings(environ=environ).env == "production"


def test_secret_urls_are_not_in_the_repr():
    url = "postgresql+psycopg://gate:hunter2-password@db/torchgate"
    settings = load_settings(environ={**PRODUCTION, "TORCHGATE_DATABASE_URL": url})
    assert settings.database_url == url and "hunter2" not in repr(settings)
