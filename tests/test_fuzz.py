"""A bounded run of the decoder fuzzer (fuzz/fuzz_decoder.py), as CI's smoke test."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_fuzzer_finds_no_failure_in_a_thousand_cases(tmp_path):
    """A fixed number of cases, not a time budget: a busy machine runs fewer in the same time
    (946 in 40 s once, with training beside it), and the count should not depend on that."""
    r = subprocess.run([sys.executable, str(ROOT / "fuzz" / "fuzz_decoder.py"), "--cases", "1000",
                        "--seed", "1", "--time-limit", "5", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    cases = int(re.search(r"(\d+) cases in", r.stdout).group(1))
    assert cases == 1000 and "failures: 0" in r.stdout
    assert int(re.search(r"(\d+)  image", r.stdout).group(1)) > 0  # some cases got to the end
    slowest = float(re.search(r"slowest decodes: ([0-9.]+) s", r.stdout).group(1))
    assert slowest < 2
