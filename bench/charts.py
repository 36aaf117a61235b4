"""Charts benchmark (issue 14): rendering, installing and a no-op upgrade of a chart of 500 objects.

1. Render: a chart of 500 ConfigMaps (50 templates of 10, using a macro file and filters) through
   `reconcile.charting.render` (sandbox, time/size bounds, YAML parsing, object checks) against the
   same templates in a plain jinja2 Environment (text only, no checks) in the same process.
   Target: < 1 s and <= 2x plain jinja2.
2. Install: `reconcile chart install` of the chart against `reconcile apply -f` of the very objects it
   rendered (each a CLI process, into its own namespace of one fresh secured API server).
   Target: <= 1.2x apply.
3. A no-op upgrade (same chart, same values): the objects written must be 0 (the release's own
   records, a new revision and the superseded one, are counted apart).
Every process started here is stopped by pid in `finally` blocks.

Usage: python bench/charts.py [--objects 500]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jinja2
from scheduler import HOST, free_port, start, stop, wait_ready
from secure_api import SecuredApi

from reconcile.charting import actions, chart, functions, render
from reconcile.client import api as client_api
from reconcile.etcdserver import embedded

PER_TEMPLATE = 10
HELPERS = """\
{% macro labels(n) -%}
app.kubernetes.io/name: {{ chart.name }}
app.kubernetes.io/instance: {{ release.name }}
bench/index: {{ n | string | quote }}
{%- endmacro %}
"""
TEMPLATE = """\
{%- import "_helpers.j2" as h with context -%}
{%- for i in range(values.perTemplate) %}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ release.name }}-t{{ T }}-{{ i }}
  labels: {{ h.labels(i) | nindent(4) }}
data:
  greeting: {{ values.greeting | quote }}
  settings: {{ values.settings | toyaml | quote }}
  digest: {{ (values.greeting ~ i) | sha256sum | trunc(16) }}
{%- endfor %}
"""


def write_chart(root: Path, objects: int) -> Path:
    folder = root / "bench"
    (folder / "templates").mkdir(parents=True)
    (folder / "Chart.yaml").write_text("apiVersion: v2\nname: bench\nversion: 1.0.0\n")
    (folder / "values.yaml").write_text(f"perTemplate: {PER_TEMPLATE}\ngreeting: hello\n"
                                        "settings: {level: 3, mode: fast, tags: [a, b]}\n")
    (folder / "templates" / "_helpers.j2").write_text(HELPERS)
    for t in range(objects // PER_TEMPLATE):
        (folder / "templates" / f"t{t:03}.yaml.j2").write_text(TEMPLATE.replace("{{ T }}", str(t)))
    return folder


def best_of(fn, runs: int = 5) -> float:  # noqa: ANN001 - a timing helper
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_render(folder: Path) -> tuple[float, float, int]:
    loaded = chart.load(folder)
    release = render.ReleaseInfo("bench", "default")
    count = len(render.render(loaded, {}, release).documents)
    ours = best_of(lambda: render.render(chart.load(folder), {}, release))

    def plain() -> None:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder / "templates")))
        env.filters.update(functions.FILTERS)
        context = {"values": loaded.values, "release": {"name": "bench", "namespace": "default"},
                   "chart": loaded.metadata}
        for name in sorted(loaded.templates()):
            if not name.startswith("_"):
                env.get_template(name).render(**context)

    return ours, best_of(plain), count


def cli(*args: str, kubeconfig: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "reconcile", *args, *kubeconfig], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"), timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"reconcile {' '.join(args)} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-charts-") as tmp:
        tmp_path = Path(tmp)
        folder = write_chart(tmp_path, args.objects)
        ours, plain, count = bench_render(folder)
        print(f"render {count} objects: {ours * 1000:.0f} ms (plain jinja2, no checks: {plain * 1000:.0f} ms; "
              f"{ours / plain:.2f}x; target < 1000 ms and <= 2x)")

        etcd = embedded.EmbeddedEtcd(tmp_path / "etcd")
        api = None
        try:
            etcd.start()
            port = free_port()
            secure = SecuredApi(tmp_path)
            url = secure.url(HOST, port)
            log = tmp_path / "apiserver.log"
            api = start(["-m", "reconcile", "apiserver", "--etcd", etcd.endpoint, "--port", str(port),
                         *secure.apiserver_args()], log)
            wait_ready(url, api, log, verify=secure.ssl_context())
            kubeconfig = secure.kubeconfig_args(url)
            with client_api.Client(secure.client_config(url)) as client:
                for ns in ("bench-apply", "bench-chart"):
                    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
                manifest = tmp_path / "rendered.yaml"
                out = render.render(chart.load(folder), {}, render.ReleaseInfo("bench", "bench-apply"))
                manifest.write_text(out.manifest())
                cli("chart", "list", kubeconfig=kubeconfig)  # warm the interpreter's file caches for both
                applied = cli("apply", "-f", str(manifest), "-n", "bench-apply", kubeconfig=kubeconfig)
                installed = cli("chart", "install", "bench", str(folder), "-n", "bench-chart", kubeconfig=kubeconfig)
                print(f"install {count} objects: {installed:.2f} s (reconcile apply of the same files: "
                      f"{applied:.2f} s; {installed / applied:.2f}x; target <= 1.2x)")

                operations = actions.Operations(client)
                started = time.perf_counter()
                record = operations.upgrade("bench", "bench-chart", chart.load(folder), {})
                elapsed = time.perf_counter() - started
                print(f"no-op upgrade: {operations.writes} objects written (target 0), revision {record.revision} "
                      f"recorded (3 release-record writes: the new revision, its status, the superseded one), {elapsed:.2f} s")
                if operations.writes:
                    raise SystemExit("a no-op upgrade wrote objects")
        finally:
            stop(api)
            etcd.stop()


if __name__ == "__main__":
    main()
