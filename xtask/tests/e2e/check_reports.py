"""Validates report documents against xtask/report.schema.json with a complete JSON Schema
validator: the end-to-end suite's second opinion on the xtask's own check.

Usage: check_reports.py SCHEMA FILE...; a .jsonl file is read as history lines. Prints one line
per problem, then `checked N documents`; exits 1 when any document does not match.
"""

import json
import pathlib
import sys

from jsonschema import Draft202012Validator


def main() -> int:
    schema = json.loads(pathlib.Path(sys.argv[1]).read_text())
    Draft202012Validator.check_schema(schema)
    whole = Draft202012Validator(schema)
    # A history line is one definition of the schema, not a document of its own.
    line = Draft202012Validator({**schema, "oneOf": [{"$ref": "#/$defs/history_line"}]})
    problems, count = [], 0
    for arg in sys.argv[2:]:
        path = pathlib.Path(arg)
        if path.suffix == ".jsonl":
            lines = enumerate(path.read_text().splitlines(), 1)
            docs = [(f"{path}:{n}", json.loads(text), line) for n, text in lines if text.strip()]
        else:
            docs = [(str(path), json.loads(path.read_text()), whole)]
        for name, doc, validator in docs:
            count += 1
            for error in validator.iter_errors(doc):
                problems.append(f"{name}: {error.json_path}: {error.message}")
    for p in problems:
        print(p)
    print(f"checked {count} documents")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
