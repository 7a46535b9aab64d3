"""docs/settings.md is generated from config.py and names every variable the project reads."""

from __future__ import annotations

import re

from config import SETTING_NAMES
from environment import CLIENT_VARIABLES, SERVER_VARIABLES
from tests.doc_blocks import ROOT, load_script


def test_docs_settings_md_is_up_to_date():
    committed = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    rendered = load_script("render_settings").render()
    assert committed == rendered, "run: .venv/bin/python scripts/render_settings.py"


def test_every_setting_has_a_meaning_in_the_reference():
    text = (ROOT / "docs" / "settings.md").read_text()
    rows = re.findall(r"^\| `([A-Z_0-9]+)` \|.*\| (.+) \|$", text, re.MULTILINE)
    named = {name for name, meaning in rows if meaning.strip()}
    assert set(SETTING_NAMES) | set(SERVER_VARIABLES) | set(CLIENT_VARIABLES) <= named


def test_server_variables_are_the_ones_gunicorn_conf_reads():
    text = (ROOT / "gunicorn.conf.py").read_text()
    read = set(re.findall(r'_env\("([A-Z_]+)"', text))
    read |= set(re.findall(r'_tls_choice\("([A-Z_]+)"', text))
    read |= set(re.findall(r"TORCHGATE_([A-Z0-9_]*[A-Z0-9])", text))
    assert read - set(SETTING_NAMES) == set(SERVER_VARIABLES)


def test_client_variables_are_the_ones_the_client_cli_reads():
    text = (ROOT / "client" / "__main__.py").read_text()
    assert set(re.findall(r'pick\("([A-Z_]+)"', text)) == set(CLIENT_VARIABLES)
