"""README stays true: its commands are CI's, its result tables are the rendered results/ files."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_ci_runs_readme_setup_and_test_commands():
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ("python -m pip install -r requirements.txt", "python -m pytest --nbval"):
        assert command in README and command in ci


def test_readme_tables_are_the_rendered_result_files():
    tables = sorted((ROOT / "results").glob("*.md"))
    assert tables, "run python -m d2l_ext tables"
    for table in tables:
        rows = [l for l in table.read_text().splitlines() if l.startswith("|")]
        assert rows and all(row in README for row in rows), f"README differs from {table}"


def test_readme_speed_numbers_come_from_the_benchmark_file():
    import json
    speed = json.loads((ROOT / "results" / "speed.json").read_text())
    for name, value in speed["images_per_s"].items():
        assert re.search(rf"\| {re.escape(name)} \| {value:.0f} \|", README), name
