"""tests/browser/openapi.py - check HTTP answers against docs/openapi.yaml.

The fixture server checks every JSON answer it sends, and the API tests
check every answer of the real broker, against the one description in
docs/openapi.yaml, so the fixture, the broker and the document cannot
drift apart unnoticed.

It implements the part of JSON Schema (2020-12, as OpenAPI 3.1 uses it)
that the document uses: type (one or a list), properties, required,
additionalProperties, items, enum, const, minimum, maximum, minLength,
maxLength, minItems, maxItems, pattern, oneOf, allOf, $ref, and {} for
any value. Anything else in a schema is an error in this checker, so the
document cannot use a keyword the checker silently ignores.
"""

import re

import yaml

_KNOWN = {"type", "properties", "required", "additionalProperties", "items",
          "enum", "const", "minimum", "maximum", "minLength", "maxLength",
          "minItems", "maxItems", "pattern", "oneOf", "allOf", "$ref",
          "description", "default", "format"}

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: (isinstance(v, (int, float))
                         and not isinstance(v, bool)),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class Spec:
    """The API description, with a matcher from concrete paths to routes."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)
        self.routes = []
        for tmpl, item in self.doc["paths"].items():
            rx = "^" + re.sub(r"\\\{[a-z_]+\\\}", "([^/]+)",
                              re.escape(tmpl)) + "$"
            # A literal segment wins over a parameter (tasks/retry is not
            # tasks/{id}): try templates with fewer parameters first.
            self.routes.append((tmpl.count("{"), re.compile(rx), tmpl, item))
        self.routes.sort(key=lambda r: r[0])

    def route(self, path):
        """The template matching `path` (without a query), or None."""
        for _, rx, tmpl, item in self.routes:
            if rx.match(path):
                return tmpl
        return None

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise ValueError("only local $ref: " + ref)
            cur = self.doc
            for part in ref[2:].split("/"):
                cur = cur[part]
            node = cur
        return node

    def response_schema(self, method, path, status):
        """The JSON schema of an answer, or raise KeyError with why."""
        tmpl = self.route(path)
        if tmpl is None:
            raise KeyError("no route in openapi.yaml for " + path)
        op = self.doc["paths"][tmpl].get(method.lower())
        if op is None:
            raise KeyError("openapi.yaml: %s has no %s" % (tmpl, method))
        resp = op["responses"].get(str(status))
        if resp is None:
            raise KeyError("openapi.yaml: %s %s does not list status %s"
                           % (method, tmpl, status))
        resp = self.resolve(resp)
        content = resp.get("content", {})
        if "application/json" not in content:
            raise KeyError("openapi.yaml: %s %s %s is not JSON"
                           % (method, tmpl, status))
        return content["application/json"]["schema"]

    def check_response(self, method, path, status, body):
        """A list of problems (empty when `body` fits the description).
        HEAD is GET without a body. An error status an operation does not
        list (a 405 for a method a route lacks, a 404 for no route at
        all) must still have the one error shape of docs/HTTP.md."""
        if method == "HEAD":
            if body is not None:
                return ["HEAD %s answered a body" % path]
            return []
        try:
            schema = self.response_schema(method, path, status)
        except KeyError as e:
            if status < 400:
                return [str(e)]
            schema = {"$ref": "#/components/schemas/Error"}
        return self.validate(body, schema, "$")

    def check_schema(self, name, value):
        return self.validate(value, {"$ref": "#/components/schemas/" + name},
                             "$")

    def validate(self, v, schema, where):
        schema = self.resolve(schema)
        errs = []
        unknown = set(schema) - _KNOWN
        if unknown:
            return ["%s: schema uses %s, which the checker does not know"
                    % (where, sorted(unknown))]
        if "allOf" in schema:
            for sub in schema["allOf"]:
                errs += self.validate(v, sub, where)
        if "oneOf" in schema:
            fits = [s for s in schema["oneOf"]
                    if not self.validate(v, s, where)]
            if len(fits) != 1:
                errs.append("%s: %r fits %d of oneOf, not 1"
                            % (where, v, len(fits)))
        t = schema.get("type")
        if t is not None:
            ts = t if isinstance(t, list) else [t]
            if not any(_TYPES[x](v) for x in ts):
                return errs + ["%s: %r is not %s" % (where, v, "/".join(ts))]
        if "enum" in schema and v not in schema["enum"]:
            errs.append("%s: %r not in %s" % (where, v, schema["enum"]))
        if "const" in schema and v != schema["const"]:
            errs.append("%s: %r is not %r" % (where, v, schema["const"]))
        if _TYPES["number"](v):
            if "minimum" in schema and v < schema["minimum"]:
                errs.append("%s: %r < %r" % (where, v, schema["minimum"]))
            if "maximum" in schema and v > schema["maximum"]:
                errs.append("%s: %r > %r" % (where, v, schema["maximum"]))
        if isinstance(v, str):
            if "minLength" in schema and len(v) < schema["minLength"]:
                errs.append("%s: %r is too short" % (where, v))
            if "maxLength" in schema and len(v) > schema["maxLength"]:
                errs.append("%s: string of %d characters is too long"
                            % (where, len(v)))
            if "pattern" in schema and not re.search(schema["pattern"], v):
                errs.append("%s: %r does not match %s"
                            % (where, v, schema["pattern"]))
        if isinstance(v, list):
            if "minItems" in schema and len(v) < schema["minItems"]:
                errs.append("%s: fewer than %d items"
                            % (where, schema["minItems"]))
            if "maxItems" in schema and len(v) > schema["maxItems"]:
                errs.append("%s: more than %d items"
                            % (where, schema["maxItems"]))
            if "items" in schema:
                for i, x in enumerate(v):
                    errs += self.validate(x, schema["items"],
                                          "%s[%d]" % (where, i))
        if isinstance(v, dict):
            props = schema.get("properties", {})
            for k in schema.get("required", []):
                if k not in v:
                    errs.append("%s: missing %r" % (where, k))
            for k, x in v.items():
                if k in props:
                    errs += self.validate(x, props[k], where + "." + k)
                else:
                    extra = schema.get("additionalProperties", True)
                    if extra is False and "allOf" not in schema:
                        errs.append("%s: unexpected key %r" % (where, k))
                    elif isinstance(extra, dict):
                        errs += self.validate(x, extra, where + "." + k)
        return errs
