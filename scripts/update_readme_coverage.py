"""Rewrite the coverage block of README.md from the code (tests/test_coverage.py checks it)."""

import re
from pathlib import Path

from lwnn import coverage

readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text()
table = coverage.to_markdown(coverage.seed_table())
new = re.sub(r"(<!-- coverage:begin -->\n).*?(\n<!-- coverage:end -->)", lambda m: m[1] + table + m[2], text,
             flags=re.S)
readme.write_text(new)
print("README.md coverage block:", "updated" if new != text else "unchanged")
