"""The starter chart `reconcile chart create NAME` writes: a Deployment behind a Service, a values
schema, NOTES and a test hook; small enough to read in a minute and edit into a real chart."""

from __future__ import annotations

CHART = """\
apiVersion: v2
name: {name}
description: A chart for {name}
type: application
# The chart's version (SemVer 2); bump it on every change to the chart.
version: 0.1.0
# The version of the application the chart deploys.
appVersion: "1.0"
"""

VALUES = """\
replicaCount: 1
image:
  repository: reconcile-hello
  tag: "1.0"
service:
  port: 80
containerPort: 8080
resources: {}
"""

SCHEMA = """\
{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "required": ["replicaCount", "image"],
  "properties": {
    "replicaCount": {"type": "integer", "minimum": 0},
    "image": {"type": "object", "required": ["repository", "tag"],
              "properties": {"repository": {"type": "string"}, "tag": {"type": "string"}}},
    "service": {"type": "object", "properties": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}}},
    "containerPort": {"type": "integer", "minimum": 1, "maximum": 65535}
  }
}
"""

HELPERS = """\
{#- Macros shared by the templates: `{% import "_helpers.j2" as h with context %}` (never rendered alone). -#}
{% macro fullname() %}{{ (release.name ~ "-" ~ chart.name) | trunc(63) | trimsuffix("-") }}{% endmacro %}
{% macro selector() -%}
app.kubernetes.io/name: {{ chart.name }}
app.kubernetes.io/instance: {{ release.name }}
{%- endmacro %}
"""

DEPLOYMENT = """\
{%- import "_helpers.j2" as h with context -%}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ h.fullname() }}
  labels: {{ h.selector() | nindent(4) }}
spec:
  replicas: {{ values.replicaCount }}
  selector:
    matchLabels: {{ h.selector() | nindent(6) }}
  template:
    metadata:
      labels: {{ h.selector() | nindent(8) }}
    spec:
      containers:
        - name: {{ chart.name }}
          image: "{{ values.image.repository }}:{{ values.image.tag }}"
          command: ["httpd", "-f", "-p", "{{ values.containerPort }}", "-h", "/"]
          ports:
            - {name: http, containerPort: {{ values.containerPort }}}
          readinessProbe:
            tcpSocket: {port: http}
{%- if values.resources %}
          resources: {{ values.resources | toyaml | nindent(12) }}
{%- endif %}
"""

SERVICE = """\
{%- import "_helpers.j2" as h with context -%}
apiVersion: v1
kind: Service
metadata:
  name: {{ h.fullname() }}
spec:
  selector: {{ h.selector() | nindent(4) }}
  ports:
    - {name: http, port: {{ values.service.port }}, targetPort: http}
"""

TEST = """\
{%- import "_helpers.j2" as h with context -%}
apiVersion: v1
kind: Pod
metadata:
  name: {{ h.fullname() }}-test
  annotations:
    charts.reconcile.dev/hook: test
    charts.reconcile.dev/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  restartPolicy: Never
  containers:
    - name: wget
      image: "{{ values.image.repository }}:{{ values.image.tag }}"
      command: ["wget", "-q", "-O-", "http://{{ h.fullname() }}:{{ values.service.port }}/"]
"""

NOTES = """\
{%- import "_helpers.j2" as h with context -%}
{{ chart.name }} is running as release {{ release.name }} in namespace {{ release.namespace }}.
Inside the cluster: http://{{ h.fullname() }}.{{ release.namespace }}.svc:{{ values.service.port }}/
Test it: reconcile chart test {{ release.name }} -n {{ release.namespace }}
"""


def files(name: str) -> dict[str, str]:
    """Relative path -> text of the starter chart called `name`."""
    return {
        "Chart.yaml": CHART.format(name=name), "values.yaml": VALUES, "values.schema.json": SCHEMA,
        "templates/_helpers.j2": HELPERS, "templates/deployment.yaml.j2": DEPLOYMENT,
        "templates/service.yaml.j2": SERVICE, "templates/tests/test-connection.yaml.j2": TEST,
        "templates/NOTES.txt.j2": NOTES,
    }
