"""Attribute-based access: role grants under conditions on caller and model attributes."""

from __future__ import annotations

import json

import pytest

from app import create_app
from security.rbac import RolesFileError
from tests.conftest import KEK, KEK_ID, SEALED, Auth, Sealer
from tests.external_idp import AUDIENCE, ISSUER, idp_claims, new_signing_key, write_jwks
from tests.fixtures import write_variants

CLEARED = "model.data_class in caller.clearance and caller.tenant == model.owner"
ROLES_FILE = """
[roles.tenant_user]
permissions = [{permission = "predict:*", when = "caller.tenant == model.owner"}]
[roles.cleared]
permissions = [{permission = "predict:*", when = "CLEARED"}]
[roles.analyst]
permissions = ["models:read", "predict:open"]
""".replace("CLEARED", CLEARED)
MODELS = {"acme": '[attributes]\nowner = "acme"\ndata_class = "internal"\n',
          "globex": '[attributes]\nowner = "globex"\ndata_class = "secret"\n',
          "open": ""}
ROW = {"inputs": [[0.1, 0.2, 0.3, 0.4]]}
PASSWORD = "a long passphrase"


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    return write_variants(tmp_path_factory.mktemp("tenants"), MODELS, kek_id=KEK_ID, kek=KEK)


@pytest.fixture
def settings(overrides, repository, tmp_path) -> dict:
    roles = tmp_path / "roles.toml"
    roles.write_text(ROLES_FILE)
    return {**overrides, "model_repository": str(repository), "roles_file": str(roles)}


@pytest.fixture
def app(settings):
    return create_app(settings)


def predict(app, token: str, model: str, subject: str = "alice"):
    sealer = Sealer(*Auth(app).payload_key(subject))
    return app.test_client().post(f"/predict/{model}", data=sealer.seal(ROW), content_type=SEALED,
                                  headers={"Authorization": f"Bearer {token}"})


def problem(response) -> dict:
    return {k: v for k, v in response.json.items() if k != "request_id"}


@pytest.mark.parametrize(("roles", "attributes", "model", "status"), [
    (("tenant_user",), {"tenant": "acme"}, "acme", 200),
    (("tenant_user",), {"tenant": "acme"}, "globex", 403),
    (("tenant_user",), {"tenant": "globex"}, "globex", 200),
    (("tenant_user",), {"tenant": "acme"}, "open", 403),  # the model has no owner
    (("tenant_user",), {}, "acme", 403),  # the caller has no tenant
    (("tenant_user",), {"tenant": "acme"}, "absent", 403),  # 403 before 404, as ever
    (("cleared",), {"tenant": "acme", "clearance": ["internal"]}, "acme", 200),
    (("cleared",), {"tenant": "acme", "clearance": ["secret"]}, "acme", 403),
    (("cleared",), {"tenant": "acme", "clearance": "internal"}, "acme", 403),  # not a list
    (("cleared",), {"clearance": ["internal"]}, "acme", 403),  # both clauses must hold
    (("analyst",), {"tenant": "acme"}, "open", 200),  # an unconditional grant, as before
    (("analyst",), {"tenant": "acme"}, "acme", 403),
    (("analyst", "tenant_user"), {"tenant": "acme"}, "acme", 200),
])
def test_a_conditional_grant_allows_only_when_attributes_match(app, roles, attributes, model,
                                                              status):
    token = Auth(app).token("alice", roles, attributes=attributes)
    response = predict(app, token, model)
    assert response.status_code == status, response.get_data(as_text=True)
    if status == 403:
        assert problem(response) == {
            "type": "urn:torchgate:problem:forbidden", "title": "Forbidden", "status": 403,
            "detail": f"Permission 'predict:{model}' is required."}
    else:
        assert response.mimetype == SEALED


def test_the_403_is_the_same_whichever_condition_failed(app):
    auth = Auth(app)
    answers = [problem(predict(app, auth.token("alice", ("cleared",), attributes=attrs), "acme"))
               for attrs in ({"tenant": "acme", "clearance": ["secret"]},
                             {"tenant": "globex", "clearance": ["internal"]}, {})]
    assert answers[0] == answers[1] == answers[2]


@pytest.mark.parametrize(("roles", "attributes", "visible"), [
    (("tenant_user",), {"tenant": "acme"}, ["acme"]),
    (("tenant_user",), {"tenant": "globex"}, ["globex"]),
    (("tenant_user",), {}, []),
    (("analyst",), {}, ["acme", "globex", "open"]),  # models:read sees every model
])
def test_models_lists_only_what_the_conditions_allow(app, roles, attributes, visible):
    headers = {"Authorization": f"Bearer {Auth(app).token('alice', roles, attributes=attributes)}"}
    listed = app.test_client().get("/models", headers=headers)
    assert listed.status_code == 200
    assert [model["name"] for model in listed.json["models"]] == visible
    one = app.test_client().get("/models/acme", headers=headers)
    assert one.status_code == (200 if "acme" in visible else 403)


def run(app, *args: str, input: str | None = None) -> dict:
    result = app.test_cli_runner().invoke(args=list(args), input=input)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def login(app, username: str) -> str:
    response = app.test_client().post("/auth/token", data={
        "grant_type": "password", "username": username, "password": PASSWORD})
    assert response.status_code == 200, response.json
    return response.json["access_token"]


def test_a_users_attributes_from_the_cli_travel_in_its_token(app):
    created = run(app, "users", "create", "bob", "--role", "tenant_user", "--attr", "tenant=acme",
                  "--attr", "region=eu", "--attr", "region=us", "--password-stdin",
                  input=PASSWORD + "\n")
    assert created["attributes"] == {"tenant": "acme", "region": ["eu", "us"]}
    token = login(app, "bob")
    assert predict(app, token, "acme", "bob").status_code == 200
    assert predict(app, token, "globex", "bob").status_code == 403
    assert run(app, "users", "list")["users"][0]["attributes"] == created["attributes"]


def test_set_attributes_ends_the_old_tokens_and_the_new_ones_apply(app):
    run(app, "clients", "create", "etl", "--role", "tenant_user", "--attr", "tenant=acme")
    run(app, "users", "create", "bob", "--role", "tenant_user", "--attr", "tenant=acme",
        "--password-stdin", input=PASSWORD + "\n")
    old = login(app, "bob")
    changed = run(app, "users", "set-attributes", "bob", "--attr", "tenant=globex")
    assert changed["attributes"] == {"tenant": "globex"}
    assert predict(app, old, "acme", "bob").status_code == 401
    new = login(app, "bob")
    assert predict(app, new, "acme", "bob").status_code == 403
    assert predict(app, new, "globex", "bob").status_code == 200
    assert run(app, "clients", "list")["clients"][0]["attributes"] == {"tenant": "acme"}


@pytest.mark.parametrize(("attr", "message"), [
    ("tenant", "expected NAME=VALUE"),
    ("Tenant=acme", "attribute names are lower-case"),
    ("tenant=", "expected a string or a list of strings"),
])
def test_a_bad_attr_option_is_refused(app, attr, message):
    result = app.test_cli_runner().invoke(args=["clients", "create", "etl", "--role",
                                                "tenant_user", "--attr", attr])
    assert result.exit_code == 1 and message in result.stderr
    assert run(app, "clients", "list")["clients"] == []


@pytest.mark.parametrize(("claims", "status"), [
    ({"ext": {"attrs": {"tenant": "acme"}}}, 200),
    ({"ext": {"attrs": {"tenant": "globex"}}}, 403),
    ({"ext": {"attrs": {"tenant": 7}}}, 403),  # malformed: no attributes at all
    ({"attributes": {"tenant": "acme"}}, 403),  # not at the configured path
    ({}, 403),
])
def test_an_identity_providers_attributes_come_from_the_configured_claim(settings, tmp_path,
                                                                         claims, status):
    key = new_signing_key("ES256")
    jwks = write_jwks(tmp_path / "jwks.json", [key.public_jwk()])
    app = create_app({**settings, "jwt_jwks_file": str(jwks), "jwt_issuer": ISSUER,
                      "jwt_audience": AUDIENCE, "jwt_roles_claim": "realm_access.roles",
                      "jwt_attributes_claim": "ext.attrs"})
    token = key.sign(idp_claims(realm_access={"roles": ["tenant_user"]}, **claims))
    assert predict(app, token, "acme", "f3a1c2d4-user").status_code == status


@pytest.mark.parametrize(("entry", "fragment"), [
    ('{permission = "predict:*", when = "caller.tenant = model.owner"}',
     "permissions[0].when: cannot read '= model.owner'"),
    ('{permission = "predict:*", when = "caller.tenant == model.owner or true"}',
     "permissions[0].when: clauses are joined by 'and'"),
    ('{permission = "predict:*", when = "__import__(\'os\')"}', "permissions[0].when: "),
    ('{permission = "predict:*", when = "\'a\' == \'a\'"}', "compares an attribute"),
    ('{permission = "predict:*", when = "caller.tenant in [\'a\'"}', "expected , or ]"),
    ('{permission = "predict:*"}', "permissions[0]: expected"),
    ('{permission = "predict:*", when = "caller.t == model.o", unless = "x"}', "permissions[0]"),
])
def test_a_malformed_condition_stops_start_up_with_one_line(settings, tmp_path, entry, fragment):
    roles = tmp_path / "bad-roles.toml"
    roles.write_text(f"[roles.tenant_user]\npermissions = [{entry}]\n")
    with pytest.raises(RolesFileError) as caught:
        create_app({**settings, "roles_file": str(roles)})
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{roles}: roles.tenant_user.")
    assert fragment in message
