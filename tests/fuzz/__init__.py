"""Property-based fuzzing of the real API server, driven by the resources' own schemas.

Four resources (ConfigMaps, Deployments, Pods from `crds/`, and the Gadget CRD of `targets.py`);
every operation on them: create, replace, merge / JSON / strategic merge (built-ins) / apply
patches, get, list and watch with random query parameters, delete with random DeleteOptions,
/status and /scale. Inputs are mostly schema-valid objects with hostile mutations (`mutations.py`,
`metadata.py`) sent in good and broken encodings (`bodies.py`). The properties (`wire.py`,
`oracle.py`): never a 5xx; every error a well-formed `Status` with a matching code; a 2xx write
round-trips; a failed or dry-run write changes nothing; `/healthz` is 200 at the end.

Short form, part of the normal suite (50 examples per operation and resource, about two minutes):

    .venv/bin/python -m pytest tests/fuzz

Long form, by hand on a quiet machine (1,000 examples per operation and resource; figures printed
at the end and written to the JSON file):

    RECONCILE_FUZZ_EXAMPLES=1000 RECONCILE_FUZZ_REPORT=/tmp/fuzz-long.json \\
        .venv/bin/python -m pytest tests/fuzz --timeout 0 -q

A failure prints the request as a runnable `httpx.request(...)` call.
"""
