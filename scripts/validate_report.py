#!/usr/bin/env python3
"""Validate lightning-bench reports against reports/schema/report.schema.json.

Uses the `jsonschema` package (Draft 2020-12) when it can be imported, else a small built-in
validator that covers exactly the keywords the schema uses (and refuses any other, so the two
cannot silently drift apart); the output says which one ran. Then checks what a schema cannot:
counts that must agree with each other.

    scripts/validate_report.py report.json [more.json ...]
    scripts/validate_report.py --builtin report.json     # force the built-in validator

Exit status: 0 all reports valid, 1 a report is invalid, 2 usage or unreadable files.
"""

import argparse
import json
import math
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCHEMA = os.path.join(HERE, "..", "reports", "schema", "report.schema.json")

# Keywords that only annotate.
ANNOTATIONS = {"$schema", "$id", "title", "description", "$comment", "$defs"}


class BuiltinValidator:
    """A subset of JSON Schema 2020-12: type, enum, const, properties, required,
    additionalProperties, items, minItems, maxItems, minimum, maximum, minLength, pattern,
    $ref (local), anyOf, allOf, if/then/else."""

    KNOWN = ANNOTATIONS | {
        "type", "enum", "const", "properties", "required", "additionalProperties", "items",
        "minItems", "maxItems", "minimum", "maximum", "minLength", "pattern", "$ref", "anyOf",
        "allOf", "if", "then", "else",
    }

    def __init__(self, schema):
        self.root = schema

    def resolve(self, ref):
        if not ref.startswith("#/"):
            raise ValueError(f"built-in validator: only local $ref are supported, got {ref}")
        node = self.root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    @staticmethod
    def is_type(value, name):
        if name == "null":
            return value is None
        if name == "boolean":
            return isinstance(value, bool)
        if name == "integer":
            if isinstance(value, bool):
                return False
            return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if name == "number":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if name == "string":
            return isinstance(value, str)
        if name == "array":
            return isinstance(value, list)
        if name == "object":
            return isinstance(value, dict)
        raise ValueError(f"built-in validator: unknown type {name}")

    @staticmethod
    def equal(a, b):
        # JSON equality: 1 == 1.0, but True != 1.
        if isinstance(a, bool) or isinstance(b, bool):
            return type(a) is type(b) and a == b
        return a == b

    def errors(self, value, schema, path="$"):
        if schema is True:
            return
        if schema is False:
            yield f"{path}: not allowed here"
            return
        unknown = set(schema) - self.KNOWN
        if unknown:
            raise ValueError(f"built-in validator: unsupported keyword(s) {sorted(unknown)} "
                             f"in the schema near {path}")
        if "$ref" in schema:
            yield from self.errors(value, self.resolve(schema["$ref"]), path)
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(self.is_type(value, t) for t in types):
                yield f"{path}: {json.dumps(value)[:80]} is not of type {' or '.join(types)}"
                return
        if "const" in schema and not self.equal(value, schema["const"]):
            yield f"{path}: {json.dumps(value)[:80]} is not {json.dumps(schema['const'])}"
        if "enum" in schema and not any(self.equal(value, e) for e in schema["enum"]):
            yield f"{path}: {json.dumps(value)[:80]} is not one of {json.dumps(schema['enum'])}"
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and "minimum" in schema and value < schema["minimum"]:
            yield f"{path}: {value} is less than the minimum {schema['minimum']}"
        if number and "maximum" in schema and value > schema["maximum"]:
            yield f"{path}: {value} is greater than the maximum {schema['maximum']}"
        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                yield f"{path}: '{value}' is shorter than {schema['minLength']}"
            if "pattern" in schema and not re.search(schema["pattern"], value):
                yield f"{path}: '{value}' does not match {schema['pattern']}"
        if isinstance(value, list):
            if "minItems" in schema and len(value) < schema["minItems"]:
                yield f"{path}: {len(value)} items, fewer than {schema['minItems']}"
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                yield f"{path}: {len(value)} items, more than {schema['maxItems']}"
            if "items" in schema:
                for i, item in enumerate(value):
                    yield from self.errors(item, schema["items"], f"{path}[{i}]")
        if isinstance(value, dict):
            for key in schema.get("required", []):
                if key not in value:
                    yield f"{path}: '{key}' is a required property"
            props = schema.get("properties", {})
            for key, item in value.items():
                if key in props:
                    yield from self.errors(item, props[key], f"{path}.{key}")
                elif "additionalProperties" in schema:
                    extra = schema["additionalProperties"]
                    if extra is False:
                        yield f"{path}: additional property '{key}' is not allowed"
                    else:
                        yield from self.errors(item, extra, f"{path}.{key}")
        if "anyOf" in schema:
            branches = [list(self.errors(value, s, path)) for s in schema["anyOf"]]
            if all(branches):
                # The branch that got deepest explains best (not "... is not of type null").
                best = max(branches, key=lambda errs: len(errs[0].split(": ")[0]))
                yield f"{path}: matches none of anyOf; closest: {best[0]}"
        for sub in schema.get("allOf", []):
            yield from self.errors(value, sub, path)
        if "if" in schema:
            if not any(True for _ in self.errors(value, schema["if"], path)):
                if "then" in schema:
                    yield from self.errors(value, schema["then"], path)
            elif "else" in schema:
                yield from self.errors(value, schema["else"], path)


def schema_errors(report, schema, force_builtin):
    """(errors, which validator ran)"""
    if not force_builtin:
        try:
            import jsonschema  # noqa: F401
            from jsonschema import Draft202012Validator
        except ImportError:
            pass
        else:
            try:
                from importlib.metadata import version
                jv = version("jsonschema")
            except Exception:  # pragma: no cover - metadata missing
                jv = "unknown version"
            validator = Draft202012Validator(schema)
            errs = sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path))
            out = []
            for e in errs:
                where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                                      for p in e.absolute_path)
                out.append(f"{where}: {e.message[:200]}")
            return out, f"jsonschema {jv} (Draft 2020-12)"
        why = "jsonschema is not importable"
    else:
        why = "--builtin"
    return list(BuiltinValidator(schema).errors(report, schema)), f"built-in validator ({why})"


def consistency_errors(report):
    """What the schema cannot say: counts that must agree."""
    errs = []
    points = report.get("points", [])
    counts = report.get("summary", {}).get("counts", {})
    if counts.get("points") != len(points):
        errs.append(f"summary.counts.points is {counts.get('points')}, the report holds "
                    f"{len(points)} points")
    for status in ("ok", "skipped", "failed"):
        n = sum(1 for p in points if p.get("status") == status)
        if counts.get(status) != n:
            errs.append(f"summary.counts.{status} is {counts.get(status)}, counted {n}")
    planned = report.get("points_planned", 0)
    if len(points) > planned:
        errs.append(f"{len(points)} points but only {planned} planned")
    if report.get("status") == "complete" and len(points) != planned:
        errs.append(f"status complete but {len(points)} of {planned} points")
    if report.get("status") == "complete" and report.get("finished_at") is None:
        errs.append("status complete but finished_at is null")
    for i, p in enumerate(points):
        t = p.get("timing")
        if t and t.get("samples") != len(t.get("samples_ms", [])):
            errs.append(f"$.points[{i}].timing: samples {t.get('samples')} but "
                        f"{len(t.get('samples_ms', []))} raw samples")
        tp = p.get("throughput")
        if t and tp and t.get("median_ms") and tp.get("tokens_per_s"):
            expect = p["tokens"] / (t["median_ms"] / 1e3)
            if not math.isclose(expect, tp["tokens_per_s"], rel_tol=1e-6):
                errs.append(f"$.points[{i}]: tokens_per_s {tp['tokens_per_s']} is not "
                            f"tokens / median ({expect})")
        if p.get("tokens") != p.get("batch", 0) * p.get("seqlen", 0):
            errs.append(f"$.points[{i}]: tokens != batch * seqlen")
    return errs


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", help="report JSON files")
    parser.add_argument("--schema", default=DEFAULT_SCHEMA, help="schema file")
    parser.add_argument("--builtin", action="store_true",
                        help="use the built-in validator even when jsonschema is importable")
    args = parser.parse_args(argv)
    try:
        with open(args.schema) as f:
            schema = json.load(f)
    except (OSError, ValueError) as e:
        print(f"validate_report: cannot read the schema {args.schema}: {e}", file=sys.stderr)
        return 2
    status = 0
    for path in args.reports:
        try:
            with open(path) as f:
                report = json.load(f)
        except (OSError, ValueError) as e:
            print(f"validate_report: {path}: cannot read: {e}", file=sys.stderr)
            status = max(status, 2)
            continue
        try:
            errs, which = schema_errors(report, schema, args.builtin)
        except ValueError as e:
            print(f"validate_report: {e}", file=sys.stderr)
            return 2
        errs += consistency_errors(report) if not errs else []
        if errs:
            print(f"validate_report: {path}: INVALID ({which}), {len(errs)} error(s):")
            for e in errs[:25]:
                print(f"  {e}")
            if len(errs) > 25:
                print(f"  ... and {len(errs) - 25} more")
            status = max(status, 1)
        else:
            n = len(report.get("points", []))
            print(f"validate_report: {path}: valid ({which}; schema_version "
                  f"{report.get('schema_version')}, {n} points, status {report.get('status')})")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
