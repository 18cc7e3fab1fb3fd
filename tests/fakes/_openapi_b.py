"""Check a JSON request body against an OpenAPI 3.0 operation's schema.

Our own small checker (no jsonschema in the venv): it covers what vendor
request schemas use — ``$ref``, ``allOf``, ``oneOf``/``anyOf``, ``type``,
``required``, ``properties``, ``items``, ``enum``, ``nullable``,
``minLength``/``maxLength``, ``maxItems``. ``oneOf`` is checked as "at least
one branch matches": vendor specs leave ``additionalProperties`` open, so
strict exclusivity would reject valid bodies that happen to fit two
branches. Unknown keywords are ignored, never treated as a pass of a check
we did not make: every rule above either passes or names the failing path.
"""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
}


class OpenAPI:
    def __init__(self, document: dict[str, Any]) -> None:
        self.doc = document

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.doc
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def request_schema(self, method: str, template: str) -> dict[str, Any]:
        op = self.doc["paths"][template][method.lower()]
        body = self.resolve(op["requestBody"])
        return body["content"]["application/json"]["schema"]

    def validate_request(self, method: str, template: str, body: Any) -> list[str]:
        """Problems with ``body`` for that operation (empty list = valid)."""
        return self.validate(self.request_schema(method, template), body, "$")

    def validate(self, schema: dict[str, Any], value: Any, path: str) -> list[str]:
        schema = self.resolve(schema)
        if value is None:
            return [] if schema.get("nullable") else [f"{path}: null not allowed"]
        errors: list[str] = []
        for sub in schema.get("allOf", []):
            errors += self.validate(sub, value, path)
        for key in ("oneOf", "anyOf"):
            if key in schema:
                branches = [self.validate(sub, value, path) for sub in schema[key]]
                if all(branches):
                    best = min(branches, key=len)
                    errors.append(f"{path}: matches no {key} branch ({'; '.join(best)})")
        expected = schema.get("type")
        if expected:
            ok = isinstance(value, _TYPES[expected]) and not (
                expected in ("integer", "number") and isinstance(value, bool)
            )
            if not ok:
                return [*errors, f"{path}: expected {expected}, got {type(value).__name__}"]
        if "enum" in schema and value not in schema["enum"]:
            errors.append(f"{path}: {value!r} not one of {schema['enum']}")
        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                errors.append(f"{path}: shorter than {schema['minLength']}")
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                errors.append(f"{path}: longer than {schema['maxLength']}")
        if isinstance(value, dict):
            for name in schema.get("required", []):
                if name not in value:
                    errors.append(f"{path}: missing required {name!r}")
            for name, sub in (schema.get("properties") or {}).items():
                if name in value:
                    errors += self.validate(sub, value[name], f"{path}.{name}")
        if isinstance(value, list):
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                errors.append(f"{path}: more than {schema['maxItems']} items")
            if "items" in schema:
                for i, item in enumerate(value):
                    errors += self.validate(schema["items"], item, f"{path}[{i}]")
        return errors

    def example(self, schema: dict[str, Any]) -> Any:
        """A value shaped like ``schema`` from the spec's own ``example`` fields."""
        schema = self.resolve(schema)
        if "example" in schema:
            return schema["example"]
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for sub in schema["allOf"]:
                value = self.example(sub)
                if isinstance(value, dict):
                    merged.update(value)
            return merged
        for key in ("oneOf", "anyOf"):
            if key in schema:
                return self.example(schema[key][0])
        kind = schema.get("type", "object" if "properties" in schema else None)
        if kind == "object":
            return {k: self.example(v) for k, v in (schema.get("properties") or {}).items()}
        if kind == "array":
            return []
        return {"string": "", "integer": 0, "number": 0, "boolean": False}.get(kind or "")
