"""Reads OpenSearch's bulk REST-test YAML files and prints them as JSON for tests/ingest_es.rs.

Usage: es_yaml_cases.py FILE.yml...  -> [{"file", "case", "steps": [...]}] on stdout.
Bulk bodies are rendered to NDJSON text the way the YAML test runner sends them.
"""
import json
import sys

import yaml


def ndjson(body):
    if isinstance(body, str):
        return body if body.endswith("\n") else body + "\n"
    lines = [item if isinstance(item, str) else json.dumps(item, ensure_ascii=False) for item in body]
    return "\n".join(lines) + "\n"


def main():
    out = []
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as handle:
            for document in yaml.safe_load_all(handle):
                if not document:
                    continue
                for case, steps in document.items():
                    rendered = []
                    for step in steps:
                        (kind, value), = step.items()
                        if kind == "do":
                            value = dict(value)
                            catch = value.pop("catch", None)
                            headers = value.pop("headers", {})
                            (api, params), = value.items()
                            params = dict(params or {})
                            body = params.pop("body", None)
                            if api == "bulk" and body is not None:
                                body = ndjson(body)
                            elif body is not None:
                                body = json.dumps(body)
                            rendered.append({"kind": "do", "api": api, "params": params, "body": body,
                                             "catch": catch, "headers": headers})
                        elif kind in ("match", "is_false", "is_true"):
                            if isinstance(value, dict):
                                (path_, expected), = value.items()
                            else:
                                path_, expected = value, None
                            rendered.append({"kind": kind, "path": path_, "value": expected})
                        else:
                            rendered.append({"kind": kind})
                    out.append({"file": path.rsplit("/", 1)[-1], "case": case, "steps": rendered})
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
