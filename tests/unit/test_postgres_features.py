"""The schema and the statements stay within PostgreSQL 13, the original deployment's server.

A guard, not a proof: it looks for the SQL features that PostgreSQL 14-17 introduced in
the migrations and in every module that sends SQL. The README ("PostgreSQL") says which
versions are supported; a feature newer than 13 needs a decision note first.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NEWER_THAN_13 = {
    "NULLS NOT DISTINCT (15)": r"nulls[ _]not[ _]distinct",
    "MERGE (15)": r"\bMERGE\s+INTO\b",
    "CREATE OR REPLACE TRIGGER (14)": r"\bOR\s+REPLACE\s+TRIGGER\b",
    "SQL-standard function bodies (14)": r"\bBEGIN\s+ATOMIC\b",
    "SQL/JSON functions (16, 17)": r"\bJSON_(TABLE|EXISTS|QUERY|VALUE|OBJECTAGG|ARRAYAGG|SCALAR|SERIALIZE)\s*\(",
    "any_value (16)": r"\bany_value\s*\(",
    "range_agg and multiranges (14)": r"\b(range_agg|range_intersect_agg|\w+multirange)\s*\(",
    "date_bin (14)": r"\bdate_bin\s*\(",
    "string_to_table, trim_array, unistr, bit_count (14)": r"\b(string_to_table|trim_array|unistr|bit_count)\s*\(",
    "regexp_count/instr/like/substr (15)": r"\bregexp_(count|instr|like|substr)\s*\(",
    "random_normal (16)": r"\brandom_normal\s*\(",
    "SEARCH/CYCLE clauses (14)": r"\bSEARCH\s+(BREADTH|DEPTH)\s+FIRST\b",
    "security_invoker views (15)": r"\bsecurity_invoker\b",
    "predefined roles pg_read/write_all_data, pg_maintain (14, 17)": r"\bpg_(read_all_data|write_all_data|maintain)\b",
}


def sql_sources() -> list[Path]:
    files = [*ROOT.glob("shared/**/*.py"), *ROOT.glob("services/**/*.py")]
    return sorted(p for p in files if "__pycache__" not in p.parts)


def findings(text: str) -> list[str]:
    return [name for name, pattern in NEWER_THAN_13.items() if re.search(pattern, text, re.I)]


def test_no_statement_needs_a_postgresql_newer_than_13() -> None:
    sources = sql_sources()
    assert any("migrations" in p.parts for p in sources)
    found = {str(p.relative_to(ROOT)): hits for p in sources if (hits := findings(p.read_text()))}
    assert not found, f"features newer than PostgreSQL 13: {found}"


def test_the_guard_recognises_newer_features() -> None:
    assert findings("CREATE UNIQUE INDEX i ON t (a) NULLS NOT DISTINCT") == [
        "NULLS NOT DISTINCT (15)"
    ]
    assert findings("MERGE INTO t USING s ON t.id = s.id") == ["MERGE (15)"]
    assert findings("SELECT date_bin('15 minutes', ts, now())") == ["date_bin (14)"]
    assert findings("SELECT id FROM build_tasks FOR UPDATE SKIP LOCKED") == []
