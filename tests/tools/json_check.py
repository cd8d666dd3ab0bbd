#!/usr/bin/python3
# json_check.py SCHEMA [FILE]: validates the JSON in FILE (default stdin)
# against docs/schema/SCHEMA.schema.json; prints what is wrong and exits 1.
# Debian's python3-jsonschema (draft 7).
import json, os, sys
import jsonschema

top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
name = sys.argv[1]
with open(os.path.join(top, "docs", "schema", name + ".schema.json")) as f:
    schema = json.load(f)
text = open(sys.argv[2]).read() if len(sys.argv) > 2 else sys.stdin.read()
try:
    doc = json.loads(text)
except ValueError as e:
    print("not JSON (%s): %r" % (e, text[:200]))
    sys.exit(1)
jsonschema.Draft7Validator.check_schema(schema)
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
for e in errors:
    print("%s: %s" % ("/".join(str(p) for p in e.path) or "(top)", e.message))
sys.exit(1 if errors else 0)
