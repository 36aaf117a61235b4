"""Rendering: objects and filters templates see, errors naming file and line, schema errors with value
paths, and the sandbox under attack (Python internals, files outside the chart, endless loops, huge output)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest
import yaml

from reconcile.charting import chart, render, schema
from tests.charts.chartkit import CONFIGMAP, write_chart

RELEASE = render.ReleaseInfo("rel", "ns1", revision=3, is_install=False)


def rendered(tmp_path: Path, templates: dict[str, str], user: dict | None = None, **kwargs) -> render.Rendered:
    folder = write_chart(tmp_path, templates=templates, **kwargs)
    return render.render(chart.load(folder), user or {}, RELEASE)


def one(tmp_path: Path, body: str, user: dict | None = None, **kwargs) -> dict:
    """Render `body` into a ConfigMap's data.out and return that value."""
    template = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  out: " + body + "\n")
    return rendered(tmp_path, {"cm.yaml.j2": template}, user, **kwargs).documents[0].obj["data"]["out"]


def test_objects_release_chart_capabilities_template(tmp_path: Path) -> None:
    out = rendered(tmp_path, {"cm.yaml.j2": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ release.name }}
  namespace: {{ release.namespace }}
data:
  revision: "{{ release.revision }}"
  upgrade: "{{ release.is_upgrade }}"
  service: {{ release.service }}
  chart: {{ chart.name }}-{{ chart.version }}
  kube: {{ capabilities.kube_version.version }}
  apps: "{{ 'apps/v1' in capabilities.api_versions }}"
  template: {{ template.name }}
"""}, appVersion="1.0")
    data = out.documents[0].obj["data"]
    assert data == {"revision": "3", "upgrade": "True", "service": "reconcile", "chart": "demo-0.1.0",
                    "kube": "v1.32.0", "apps": "True", "template": "demo/templates/cm.yaml.j2"}
    assert out.documents[0].where == "demo/templates/cm.yaml.j2 (document 1)"


@pytest.mark.parametrize(("body", "user", "expected"), [
    ('{{ {"a": [1, 2]} | toyaml | quote }}', {}, "a:\n- 1\n- 2"),
    ("{{ values.m | tojson | squote }}", {"m": {"k": "v<&>"}}, '{"k":"v<&>"}'),
    ("{{ ('a: 1' | fromyaml).a }}", {}, 1),
    ('"{{ "x\\ny" | indent(2) }}"', {}, "  x y"),  # YAML folds the quoted line break
    ('{{ "hi" | b64enc }}', {}, base64.b64encode(b"hi").decode()),
    ('{{ "aGk=" | b64dec }}', {}, "hi"),
    ('{{ "hi" | sha256sum }}', {}, hashlib.sha256(b"hi").hexdigest()),
    ('{{ "abcdef" | trunc(3) }}', {}, "abc"),
    ('{{ "web-svc" | trimsuffix("-svc") }}', {}, "web"),
    ("{{ values.missing | default('fallback') }}", {}, "fallback"),
    ("{{ values.n | required('n is required') }}", {"n": 5}, 5),
    ("{{ tpl(values.t) }}", {"t": "{{ release.name }}-x", "n": 1}, "rel-x"),
    ("{{ lookup('v1', 'ConfigMap', 'ns1', 'c') | tojson | quote }}", {}, "{}"),
    ('{{ files.get("conf/app.txt") | trim }}', {}, "hello"),
    ('{{ files.glob("conf/*") | length }}', {}, 1),
])
def test_filters_and_functions(tmp_path: Path, body: str, user: dict, expected: object) -> None:
    assert one(tmp_path, body, user, files={"conf/app.txt": "hello\n"}) == expected


def test_nindent_in_a_mapping(tmp_path: Path) -> None:
    out = rendered(tmp_path, {"cm.yaml.j2": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
                                            "  labels: {{ values.labels | toyaml | nindent(4) }}\n"},
                   {"labels": {"a": "1", "b": "2"}})
    assert out.documents[0].obj["metadata"]["labels"] == {"a": "1", "b": "2"}


def test_macros_are_imported_never_rendered(tmp_path: Path) -> None:
    out = rendered(tmp_path, {
        "_helpers.j2": "{% macro fullname() %}{{ release.name }}-{{ chart.name }}{% endmacro %}\nkind: Broken\n",
        "cm.yaml.j2": '{% import "_helpers.j2" as h with context %}apiVersion: v1\nkind: ConfigMap\n'
                      "metadata:\n  name: {{ h.fullname() }}\n",
    })
    assert [d.obj["metadata"]["name"] for d in out.documents] == ["rel-demo"]


def test_notes_crds_and_hooks_are_separated(tmp_path: Path) -> None:
    hook = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  annotations:\n"
            "    charts.reconcile.dev/hook: test\nspec: {containers: [{name: c, image: busybox}]}\n")
    out = rendered(tmp_path, {"cm.yaml.j2": CONFIGMAP, "test.yaml.j2": hook,
                              "NOTES.txt.j2": "Installed {{ release.name }}.\n"},
                   files={"crds/thing.yaml": "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
                                             "metadata:\n  name: '{{ not templated }}'\n"})
    assert [d.obj["kind"] for d in out.documents] == ["ConfigMap"]
    assert [d.hook_events for d in out.hooks] == [["test"]]
    assert out.notes == "Installed rel.\n"
    assert out.crds[0].obj["metadata"]["name"] == "{{ not templated }}"
    assert "# Source: demo/templates/cm.yaml.j2" in out.manifest()
    assert [d.obj for d in render.from_manifest(out.manifest())] == [d.obj for d in out.documents]


def test_dependency_templates_render_with_their_values(tmp_path: Path) -> None:
    write_chart(tmp_path, "store", values={"suffix": "store", "value": "default"},
                templates={"cm.yaml.j2": CONFIGMAP})
    parent = write_chart(tmp_path, "app", values={"store": {"value": "from-parent"}, "off": {"enabled": False}},
                         templates={"cm.yaml.j2": CONFIGMAP},
                         dependencies=[{"name": "store", "repository": "file://../store"},
                                       {"name": "store", "alias": "off", "repository": "file://../store",
                                        "condition": "off.enabled"}])
    out = render.render(chart.load(parent), {}, RELEASE)
    assert {d.template: d.obj["data"]["value"] for d in out.documents} == {
        "app/charts/store/templates/cm.yaml.j2": "from-parent", "app/templates/cm.yaml.j2": "x"}


def test_kube_version_and_library_charts(tmp_path: Path) -> None:
    old = write_chart(tmp_path, "old", kubeVersion="<1.20.0")
    with pytest.raises(render.RenderError, match="incompatible with Kubernetes v1.32.0"):
        render.render(chart.load(old), {}, RELEASE)
    lib = write_chart(tmp_path, "lib", type="library")
    with pytest.raises(render.RenderError, match="library charts are not installable"):
        render.render(chart.load(lib), {}, RELEASE)


# --- errors name the template and the line ---

@pytest.mark.parametrize(("template", "message"), [
    ("a: 1\nb: {{ values.nope }}\n", r"demo/templates/bad.yaml.j2:2: UndefinedError: 'dict object' has no attribute 'nope'"),
    ("a: 1\n\n{% if %}\n", r"demo/templates/bad.yaml.j2:3: TemplateSyntaxError"),
    ("x: {{ values.image | required('image is required: set image=...') }}\n",
     r"demo/templates/bad.yaml.j2:1: image is required: set image=\.\.\."),
    ("{% import '_m.j2' as m %}{{ m.boom() }}\n", r"demo/templates/_m.j2:2: UndefinedError"),
])
def test_errors_name_template_and_line(tmp_path: Path, template: str, message: str) -> None:
    with pytest.raises(render.RenderError, match=message):
        rendered(tmp_path, {"bad.yaml.j2": template, "_m.j2": "{% macro boom() %}\n{{ nothing.here }}{% endmacro %}"})


@pytest.mark.parametrize(("text", "message"), [
    ("a: [\n", "the rendered output is not YAML"),
    ("- 1\n", r"\(document 1\): a document must be a mapping"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", r"\(document 1\): metadata.name is required"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: X\nmetadata: {name: b}\n",
     r"\(document 2\): apiVersion is required"),
])
def test_bad_documents_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(render.RenderError, match=message):
        rendered(tmp_path, {"doc.yaml.j2": text})


# --- the schema ---

SCHEMA = {"type": "object", "required": ["image"], "properties": {
    "replicas": {"type": "integer", "minimum": 0},
    "image": {"type": "string"},
    "ports": {"type": "array", "items": {"type": "integer"}}}}


def test_schema_errors_name_the_value_path(tmp_path: Path) -> None:
    folder = write_chart(tmp_path, values={"replicas": 1, "image": "x"}, schema=SCHEMA,
                         templates={"cm.yaml.j2": CONFIGMAP})
    render.render(chart.load(folder), {}, RELEASE)
    with pytest.raises(schema.SchemaError) as caught:
        render.render(chart.load(folder), {"replicas": -1, "ports": [80, "http"], "image": None}, RELEASE)
    assert caught.value.problems == ["(root): 'image' is a required property",
                                     "ports[1]: 'http' is not of type 'integer'",
                                     "replicas: -1 is less than the minimum of 0"]
    assert "demo:" in str(caught.value)


def test_a_broken_schema_is_the_charts_error(tmp_path: Path) -> None:
    folder = write_chart(tmp_path, schema={"type": "banana"})
    with pytest.raises(schema.SchemaError, match="not a valid JSON Schema"):
        render.render(chart.load(folder), {}, RELEASE)


# --- the sandbox under attack: each fails with a clear error, and nothing renders ---

@pytest.mark.parametrize(("body", "message"), [
    ("{{ ''.__class__.__mro__ }}", "access to attribute '__class__' of 'str' object is unsafe"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
    ("{{ cycler.__init__.__globals__ }}", "access to attribute '__init__' of 'type' object is unsafe"),
    ("{{ self._TemplateReference__context }}", "_TemplateReference__context' of 'TemplateReference' object is unsafe"),
    ("{{ values.__class__ }}", "unsafe"),
    ("{{ files._files }}", "unsafe"),
    ("{{ lookup.__globals__ }}", "unsafe"),
    ("{{ tpl.__closure__ }}", "unsafe"),
    ("{{ tpl('{{ \"\".__class__ }}') }}", "unsafe"),
    ("{{ files.get('../../etc/passwd') }}", "'../../etc/passwd' is outside the chart"),
    ("{{ files.get('/etc/passwd') }}", "'/etc/passwd' is outside the chart"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     "rendering took longer than 0.5s"),
    ("{{ 'x' * 100000000 }}", "larger than the limit"),
    ("{% for i in range(100000) %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}", "larger than the limit"),
    ("{% set s = namespace(v='x') %}{% for i in range(64) %}{% set s.v = s.v ~ s.v %}{% endfor %}{{ s.v }}",
     "larger than the limit"),
    ("{{ 2 ** 100000000 }}", "exponent"),
    ("{{ tpl(values.loop) }}", "rendering took longer than"),
])
def test_sandbox_attacks_fail_cleanly(tmp_path: Path, body: str, message: str) -> None:
    folder = write_chart(tmp_path, values={"loop": "{% for i in range(100000) %}{% for j in range(100000) %}"
                                                   "{% endfor %}{% endfor %}"},
                         templates={"evil.yaml.j2": f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
                                                    f"data:\n  out: {body}\n"})
    with pytest.raises(render.RenderError, match=message) as caught:
        render.render(chart.load(folder), {}, RELEASE, max_seconds=0.5, max_chars=1_000_000)
    assert "demo/templates/evil.yaml.j2" in str(caught.value)


def test_a_symlink_inside_the_chart_is_served_but_one_outside_never_loads(tmp_path: Path) -> None:
    folder = write_chart(tmp_path, files={"real.txt": "inside"},
                         templates={"cm.yaml.j2": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
                                                  "data:\n  out: {{ files.get('alias.txt') }}\n"})
    os.symlink(folder / "real.txt", folder / "alias.txt")
    out = render.render(chart.load(folder), {}, RELEASE)
    assert out.documents[0].obj["data"]["out"] == "inside"
    os.symlink("/etc/hostname", folder / "templates" / "leak.yaml.j2")
    with pytest.raises(chart.ChartError, match="outside the chart"):
        chart.load(folder)


def test_total_output_is_bounded_across_templates(tmp_path: Path) -> None:
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x{{ n }}\ndata:\n  a: " + "y" * 400 + "\n"
    folder = write_chart(tmp_path, templates={f"t{n}.yaml.j2": body.replace("{{ n }}", str(n)) for n in range(5)})
    with pytest.raises(render.RenderError, match="the chart's output is larger than the limit of 1500"):
        render.render(chart.load(folder), {}, RELEASE, max_chars=1500)
    assert yaml.safe_load(body.replace("{{ n }}", "0"))  # each template alone is fine
