"""pip-audit over the locked dependencies (requirements.lock), with an honest summary.

Fails on any known vulnerability. Dependencies the vulnerability service could not be asked
about (a network that reaches package indexes but not PyPI's per-release JSON API or OSV) are
counted and named in the summary, not silently passed; LUTNAS_AUDIT_STRICT=1 fails on them too.
Regenerate the lock after a dependency change: `python .ci/audit.py --write-lock`.
"""

from __future__ import annotations

import json
import os
import subprocess  # runs pip and pip-audit with fixed arguments  # nosec B404
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"


def installed() -> list[str]:
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],  # nosec B603
                         check=True, capture_output=True, text=True).stdout
    return sorted(line for line in out.splitlines() if line and not line.startswith(("-e", "#")))


def main() -> int:
    if "--write-lock" in sys.argv:
        LOCK.write_text("# pip freeze of `pip install -e \".[dev]\"` (python .ci/audit.py --write-lock)\n"
                        + "\n".join(installed()) + "\n")
        print(f"wrote {LOCK.name}")
        return 0
    locked = sorted(line for line in LOCK.read_text().splitlines() if line and not line.startswith("#"))
    drift = sorted(set(installed()) ^ set(locked))
    if drift:
        print(f"note: the installed environment differs from requirements.lock in {len(drift)} lines "
              f"(e.g. {drift[:3]}); auditing the lock")
    proc = subprocess.run(["pip-audit", "-r", str(LOCK), "--no-deps", "--disable-pip", "-f", "json",  # nosec B603 B607
                           "--progress-spinner", "off"], capture_output=True, text=True)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n")
        return 1
    deps = report.get("dependencies", [])
    vulns = [(d["name"], d["version"], v["id"]) for d in deps for v in d.get("vulns", [])]
    skipped = [d["name"] for d in deps if d.get("skip_reason")]
    print(f"pip-audit: {len(deps)} locked dependencies, {len(deps) - len(skipped)} audited, "
          f"{len(vulns)} known vulnerabilities, {len(skipped)} could not be audited"
          + (" (the vulnerability service is unreachable from this network)" if skipped else ""))
    for name, version, vid in vulns:
        print(f"  VULNERABLE {name}=={version}: {vid}")
    if vulns or (skipped and os.environ.get("LUTNAS_AUDIT_STRICT") == "1"):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
