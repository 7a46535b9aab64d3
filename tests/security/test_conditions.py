"""The roles file's condition grammar: what holds, what does not, what is refused."""

from __future__ import annotations

import re

import pytest

from security.conditions import ConditionError, parse_condition
from security.rbac import BUILTIN_ROLES, Grant, Policy
from tests.doc_blocks import ROOT, snippets

CALLER = {"tenant": "acme", "clearance": ("internal", "public"), "team": "ml"}
MODEL = {"owner": "acme", "data_class": "internal", "regions": ("eu",)}


@pytest.mark.parametrize(("text", "holds"), [
    ("caller.tenant == model.owner", True),
    ("model.owner == caller.tenant", True),
    ("caller.team == model.owner", False),
    ("caller.missing == model.missing", False),  # two absent attributes are not equal
    ("caller.tenant == 'acme'", True),
    ('caller.tenant == "globex"', False),
    ("model.data_class in caller.clearance", True),
    ("'secret' in caller.clearance", False),
    ("model.data_class in ['public', 'internal']", True),
    ("caller.tenant in model.owner", False),  # in needs a list on its right
    ("caller.clearance == caller.clearance", False),  # lists are never equal
    ("caller.tenant == model.owner and model.data_class in caller.clearance", True),
    ("caller.tenant == model.owner and 'eu' in model.regions and caller.team == 'ops'", False),
])
def test_a_condition_holds_only_when_every_clause_does(text, holds):
    assert parse_condition(text).holds(CALLER, MODEL) is holds


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("caller.tenant", "expected == or in, got 'end of condition'"),
    ("caller.tenant != model.owner", "cannot read '!= model.owner'"),
    ("caller.tenant == model.owner or caller.team == 'ml'", "clauses are joined by 'and'"),
    ("user.tenant == model.owner", "expected caller.<name>, model.<name>"),
    ("caller.tenant.name == 'x'", "expected caller.<name>, model.<name>"),
    ("'a' == 'a'", "a clause compares an attribute"),
    ("caller.tenant in ['a' 'b']", "expected , or ] in a list"),
    ("caller.tenant in [model.owner]", "a list holds quoted strings"),
    ("caller.tenant == 'a' and", "a clause is missing an operand"),
    ("caller.x == 'a'" + " and caller.x == 'a'" * 60, "longer than 1000 characters"),
])
def test_a_condition_outside_the_grammar_is_refused(text, message):
    with pytest.raises(ConditionError, match=re.escape(message)):
        parse_condition(text)


def test_without_conditions_a_policy_answers_as_before():
    policy = Policy(BUILTIN_ROLES)
    assert policy.allows(("analyst",), "predict:tiny", CALLER, MODEL)
    assert not policy.allows(("viewer",), "predict:tiny", CALLER, MODEL)
    assert policy.allows(("viewer",), "models:read")


def test_a_conditional_grant_adds_to_the_outright_ones_and_only_matches_its_pattern():
    grant = Grant("predict:*", parse_condition("caller.tenant == model.owner"))
    policy = Policy({"viewer": ("models:read", grant)})
    assert policy.allows(("viewer",), "predict:tiny", CALLER, MODEL)
    assert not policy.allows(("viewer",), "predict:tiny", CALLER, {"owner": "globex"})
    assert not policy.allows(("viewer",), "models:admin", CALLER, MODEL)
    assert policy.allows(("viewer",), "models:read")
    assert policy.permissions_for(("viewer",)) == frozenset({"models:read"})


def test_the_documented_roles_file_grants_as_docs_access_control_md_says(tmp_path):
    roles = tmp_path / "roles.toml"
    roles.write_text(snippets(ROOT / "docs" / "access-control.md")["conditional-roles"].code)
    policy = Policy.from_file(roles)
    assert policy.allows(("tenant_user",), "predict:m", CALLER, MODEL)
    assert policy.allows(("cleared",), "predict:m", CALLER, MODEL)
    assert not policy.allows(("cleared",), "predict:m", {**CALLER, "clearance": ("public",)}, MODEL)
    assert not policy.allows(("tenant_user",), "predict:m", CALLER, {"owner": "globex"})
