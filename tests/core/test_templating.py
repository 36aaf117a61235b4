"""The one sandboxed jinja2 environment (node templates, rc.render, charts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.core import templating


def test_strict_by_default_lenient_when_asked() -> None:
    loader = templating.texts({"t": "name={{ name }}"})
    with pytest.raises(templating.UndefinedError):
        templating.Templates(loader).render("t")
    assert templating.Templates(loader, strict=False).render("t") == "name="


def test_sandbox_refuses_python_internals() -> None:
    loader = templating.texts({"t": "{{ ''.__class__.__mro__[1].__subclasses__() }}"})
    with pytest.raises(templating.SecurityError):
        templating.Templates(loader).render("t")


def test_errors_are_template_errors() -> None:
    templates = templating.Templates(templating.texts({"bad": "{% if %}"}))
    for name in ("bad", "missing"):
        with pytest.raises(templating.TemplateError):
            templates.render(name)


def test_directories_first_match_wins_and_names_stay_inside(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "shipped").mkdir()
    (tmp_path / "mine" / "a.j2").write_text("mine")
    (tmp_path / "shipped" / "a.j2").write_text("shipped")
    (tmp_path / "shipped" / "b.j2").write_text("b from shipped")
    (tmp_path / "secret.j2").write_text("outside")
    templates = templating.Templates(templating.directories([tmp_path / "mine", tmp_path / "shipped"]))
    assert templates.render("a.j2") == "mine"
    assert templates.render("b.j2") == "b from shipped"
    with pytest.raises(templating.TemplateNotFound):
        templates.render("../secret.j2")


def test_manifest_filters_and_trailing_newline() -> None:
    loader = templating.texts({"t": "{{ v | toyaml }}\n{{ v | tojson_compact }}\n{{ 'hi' | b64encode }}\n"})
    text = templating.Templates(loader, keep_trailing_newline=True, filters=templating.MANIFEST_FILTERS).render(
        "t", v={"a": [1, 2]})
    assert text == 'a:\n- 1\n- 2\n{"a":[1,2]}\naGk=\n'
