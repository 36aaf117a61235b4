"""What the fuzz run did: examples per operation, requests, and the status codes they got.

Printed at the end of the pytest run (conftest's terminal summary) and, when
`RECONCILE_FUZZ_REPORT=path.json` is set, written there: the long form's figures come from it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    examples: Counter[str] = field(default_factory=Counter)  # "operation resource" -> examples run
    fuzzed: Counter[int] = field(default_factory=Counter)  # status codes of the requests under test
    support: Counter[int] = field(default_factory=Counter)  # setup, read-back and cleanup requests
    by_operation: dict[str, Counter[int]] = field(default_factory=dict)
    messages: Counter[str] = field(default_factory=Counter)  # "code reason: message" of fuzzed errors (start)

    def example(self, operation: str) -> None:
        self.examples[operation] += 1

    def answer(self, operation: str | None, code: int, error: dict | None = None) -> None:
        if operation is None:
            self.support[code] += 1
            return
        self.fuzzed[code] += 1
        self.by_operation.setdefault(operation, Counter())[code] += 1
        if error is not None:
            self.messages[f"{code} {error.get('reason')}: {str(error.get('message'))[:70]}"] += 1

    @property
    def requests(self) -> int:
        return sum(self.fuzzed.values()) + sum(self.support.values())

    def figures(self) -> dict[str, object]:
        every = self.fuzzed + self.support
        return {
            "wall_seconds": round(time.monotonic() - self.started, 1),
            "examples": dict(sorted(self.examples.items())),
            "requests": self.requests,
            "fuzzed_requests": sum(self.fuzzed.values()),
            "status_codes": {str(k): v for k, v in sorted(every.items())},
            "fuzzed_status_codes": {str(k): v for k, v in sorted(self.fuzzed.items())},
            "by_operation": {op: {str(k): v for k, v in sorted(c.items())} for op, c in sorted(self.by_operation.items())},
            "5xx": sum(v for k, v in every.items() if k >= 500),
            "commonest_errors": dict(self.messages.most_common(60)),
        }

    def lines(self) -> list[str]:
        figures = self.figures()
        examples = self.examples.values()
        out = [f"fuzz: {sum(examples)} examples over {len(self.examples)} operations "
               f"(min {min(examples, default=0)} per operation), {figures['requests']} requests "
               f"({figures['fuzzed_requests']} fuzzed), 5xx: {figures['5xx']}, {figures['wall_seconds']}s",
               f"fuzz: status codes of fuzzed requests {figures['fuzzed_status_codes']}",
               f"fuzz: status codes of all requests {figures['status_codes']}"]
        for operation, codes in figures["by_operation"].items():  # type: ignore[union-attr]
            out.append(f"fuzz:   {operation:32} examples {self.examples.get(operation, 0):5}  {codes}")
        return out

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.figures(), indent=2) + "\n")


TALLY = Tally()
