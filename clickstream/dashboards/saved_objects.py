"""OpenSearch Dashboards saved objects: read them, check them, import and export them.

The saved objects ship with the package (`clickstream.ndjson` beside this module), in the
export format of OpenSearch Dashboards 2.x. `import_objects` sends them to the saved-objects API
(`POST /api/saved_objects/_import?overwrite=true`, multipart field `file`, header
`osd-xsrf: true`); `export_objects` fetches the dashboard and everything it references
(`POST /api/saved_objects/_export`). The same visualization definitions drive the offline
report (`clickstream.dashboards.charts`).
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clickstream.errors import ConfigError, DashboardsError, DashboardsUnavailable
from clickstream.settings import DashboardsSettings, Settings

#: The committed saved objects, shipped in the package.
DEFAULT_FILE = Path(__file__).resolve().parent / "clickstream.ndjson"
#: The index pattern's title in the committed file; `import` renames it for other prefixes.
DEFAULT_PATTERN = "clickstream-events-*"
DASHBOARD_ID = "clickstream-activity"
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
#: What Dashboards would wait for at most; answers are small.
TIMEOUT = 30.0


@dataclass(frozen=True)
class Filter:
    """One enabled filter of a visualization's search source: query DSL, maybe negated."""

    query: dict[str, Any]
    negate: bool


@dataclass(frozen=True)
class Visualization:
    """A saved visualization, decoded: its `visState` aggregations and search filters."""

    id: str
    title: str
    description: str
    type: str
    aggs: list[dict[str, Any]]
    params: dict[str, Any]
    filters: list[Filter]
    index_pattern_id: str


def read_objects(path: Path | None = None) -> list[dict[str, Any]]:
    """The saved objects of an ndjson file (an export's trailing summary line is skipped)."""
    path = path or DEFAULT_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read saved objects {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start}): saved objects are ndjson"
        ) from None
    objects = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{path}:{number} is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"{path}:{number} is not a JSON object")
        if "exportedCount" in obj:
            continue
        for key in ("type", "id", "attributes"):
            if key not in obj:
                raise ConfigError(f"{path}:{number} is not a saved object: no {key!r}")
        objects.append(obj)
    if not objects:
        raise ConfigError(f"{path} holds no saved objects", hint="is it an ndjson export?")
    return objects


def _json_attribute(obj: Mapping[str, Any], *keys: str) -> Any:
    value: Any = obj["attributes"]
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    if not isinstance(value, str):
        raise ConfigError(f"{obj['type']} {obj['id']}: {'.'.join(keys)} is not a JSON string")
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ConfigError(f"{obj['type']} {obj['id']}: {'.'.join(keys)}: {exc}") from None


def _reference(obj: Mapping[str, Any], name: str) -> str:
    for ref in obj.get("references", []):
        if ref.get("name") == name:
            return str(ref["id"])
    raise ConfigError(f"{obj['type']} {obj['id']} has no reference named {name!r}")


def decode_visualization(obj: Mapping[str, Any]) -> Visualization:
    """A visualization saved object, with its JSON-string attributes decoded and checked."""
    state = _json_attribute(obj, "visState")
    source = _json_attribute(obj, "kibanaSavedObjectMeta", "searchSourceJSON")
    query = source.get("query", {})
    if query.get("query"):
        raise ConfigError(
            f"visualization {obj['id']}: a query string ({query['query']!r}) is not supported "
            "here; use filters, which carry OpenSearch query DSL"
        )
    filters = []
    for item in source.get("filter", []):
        meta = item.get("meta", {})
        if meta.get("disabled") or "query" not in item:
            continue
        filters.append(Filter(query=item["query"], negate=bool(meta.get("negate"))))
    return Visualization(
        id=str(obj["id"]),
        title=str(obj["attributes"].get("title", state.get("title", obj["id"]))),
        description=str(obj["attributes"].get("description", "")),
        type=str(state["type"]),
        aggs=[a for a in state.get("aggs", []) if a.get("enabled", True)],
        params=state.get("params", {}),
        filters=filters,
        index_pattern_id=_reference(obj, source.get("indexRefName", INDEX_REF)),
    )


def dashboard_visualizations(objects: Sequence[Mapping[str, Any]]) -> list[Visualization]:
    """The dashboard's visualizations, in its panels' reading order (top to bottom, left
    to right); every visualization if the file holds no dashboard."""
    by_id = {o["id"]: o for o in objects if o["type"] == "visualization"}
    boards = [o for o in objects if o["type"] == "dashboard"]
    if not boards:
        return [decode_visualization(o) for o in by_id.values()]
    panels = _json_attribute(boards[0], "panelsJSON")
    placed = sorted(panels, key=lambda p: (p["gridData"]["y"], p["gridData"]["x"]))
    out = []
    for panel in placed:
        vis_id = _reference(boards[0], panel["panelRefName"])
        if vis_id not in by_id:
            raise ConfigError(f"dashboard panel {panel['panelRefName']} names {vis_id}, missing")
        out.append(decode_visualization(by_id[vis_id]))
    return out


def panel_grids(objects: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, int, int, int]]:
    """Where the dashboard places each visualization: (x, y, w, h) on its 48-column grid."""
    grids: dict[str, tuple[int, int, int, int]] = {}
    for board in (o for o in objects if o["type"] == "dashboard"):
        for panel in _json_attribute(board, "panelsJSON"):
            g = panel["gridData"]
            vis_id = _reference(board, panel["panelRefName"])
            grids.setdefault(vis_id, (int(g["x"]), int(g["y"]), int(g["w"]), int(g["h"])))
        break
    return grids


def time_field(objects: Sequence[Mapping[str, Any]], pattern_id: str) -> str:
    """The time field of index pattern `pattern_id` (`timestamp` if it names none)."""
    for obj in objects:
        if obj["type"] == "index-pattern" and obj["id"] == pattern_id:
            return str(obj["attributes"].get("timeFieldName") or "timestamp")
    raise ConfigError(f"the saved objects hold no index pattern {pattern_id!r}")


#: The mapping types each aggregation can run on (text fields are not aggregatable).
_NUMERIC = frozenset({"short", "integer", "long", "float", "double", "byte"})
AGG_FIELD_TYPES: dict[str, frozenset[str]] = {
    "terms": frozenset({"keyword", "ip", "date", "boolean"}) | _NUMERIC,
    "cardinality": frozenset({"keyword", "ip", "date", "boolean"}) | _NUMERIC,
    "date_histogram": frozenset({"date"}),
}


def mapped_fields(properties: Mapping[str, Any]) -> dict[str, str]:
    """Every field of a mapping, sub-fields included (`article_title.keyword`), to its type."""
    out: dict[str, str] = {}
    for name, spec in properties.items():
        out[name] = str(spec.get("type", "object"))
        for sub, sub_spec in spec.get("fields", {}).items():
            out[f"{name}.{sub}"] = str(sub_spec.get("type"))
    return out


def field_problems(vis: Visualization, properties: Mapping[str, Any]) -> list[str]:
    """What in `vis` names a field the mapping lacks, or one its aggregation cannot use."""
    fields = mapped_fields(properties)
    problems = []
    for agg in vis.aggs:
        name = agg.get("params", {}).get("field")
        if name is None:
            continue
        kind = fields.get(name)
        allowed = AGG_FIELD_TYPES.get(agg["type"])
        if kind is None:
            problems.append(f"{vis.id}: {agg['type']} on {name}, which the mapping lacks")
        elif allowed is not None and kind not in allowed:
            problems.append(f"{vis.id}: {agg['type']} cannot run on {name} ({kind})")
    for item in vis.filters:
        for clause in item.query.values():
            for name in clause if isinstance(clause, Mapping) else ():
                if name not in fields:
                    problems.append(f"{vis.id}: a filter names {name}, which the mapping lacks")
    return problems


def for_index_pattern(objects: list[dict[str, Any]], pattern: str) -> list[dict[str, Any]]:
    """`objects` with the index pattern's title set to `pattern` (for another index prefix)."""
    return [
        {**obj, "attributes": {**obj["attributes"], "title": pattern}}
        if obj["type"] == "index-pattern" and obj["attributes"].get("title") == DEFAULT_PATTERN
        else obj
        for obj in objects
    ]


# -- the saved-objects API --------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    """What `_import` answered: how many objects it took, per type."""

    count: int
    by_type: dict[str, int]


def _ssl_context(settings: DashboardsSettings) -> ssl.SSLContext:
    if settings.ca_file is not None and not settings.ca_file.is_file():
        raise ConfigError(f"Dashboards CA file {settings.ca_file} does not exist or is not a file")
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if not settings.verify_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _headers(settings: DashboardsSettings) -> dict[str, str]:
    if (settings.username is None) != (settings.password is None):
        raise ConfigError("dashboards.username and dashboards.password must be set together")
    headers = {"osd-xsrf": "true", "accept": "application/json"}
    if settings.username is not None and settings.password is not None:
        token = f"{settings.username}:{settings.password.get_secret_value()}".encode()
        headers["authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
    return headers


def _base_url(settings: DashboardsSettings) -> str:
    if not settings.url:
        raise ConfigError(
            "no OpenSearch Dashboards URL configured",
            hint="set dashboards.url in conf/clickstream.local.toml, "
            "CLICKSTREAM_DASHBOARDS__URL, or pass --dashboards-url",
        )
    url = settings.url.rstrip("/")
    return url if "://" in url else f"https://{url}"


def _request(
    settings: DashboardsSettings, path: str, body: bytes, content_type: str, what: str
) -> bytes:
    url = _base_url(settings) + path
    headers = {**_headers(settings), "content-type": content_type}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    context = _ssl_context(settings) if url.startswith("https://") else None
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:  # noqa: S310
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        raise _http_error(what, url, exc) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLError):
            raise DashboardsUnavailable(
                f"{what}: TLS with OpenSearch Dashboards at {url} failed: {reason}",
                hint="check dashboards.url, dashboards.ca_file and dashboards.verify_certs",
            ) from None
        raise DashboardsUnavailable(
            f"{what}: cannot reach OpenSearch Dashboards at {url}: {reason}",
            hint="is it running? check dashboards.url",
        ) from None
    except (TimeoutError, OSError) as exc:
        raise DashboardsUnavailable(
            f"{what}: OpenSearch Dashboards at {url} did not answer: {exc}"
        ) from None


def _http_error(what: str, url: str, exc: urllib.error.HTTPError) -> DashboardsError:
    raw = exc.read()[:2000].decode("utf-8", "replace")
    try:
        answer = json.loads(raw)
        message = answer.get("message") or answer.get("error") or raw
    except ValueError:
        message = raw.strip() or exc.reason
    hints = {
        401: "check dashboards.username and dashboards.password",
        403: "the user lacks permission to manage saved objects",
        404: "is dashboards.url the Dashboards address (not OpenSearch's)?",
        413: "the file is larger than savedObjects.maxImportPayloadBytes allows",
    }
    error_class = DashboardsUnavailable if exc.code >= 500 else DashboardsError
    return error_class(
        f"{what}: OpenSearch Dashboards at {url} answered HTTP {exc.code}: {message}",
        hint=hints.get(exc.code),
    )


def multipart(field: str, filename: str, content: bytes, boundary: str) -> bytes:
    """A multipart/form-data body with one file part."""
    return b"".join(
        [
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'.encode(),
            b"Content-Type: application/ndjson\r\n\r\n",
            content,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )


def _describe_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        kind = err.get("error", {})
        detail = kind.get("type", "error")
        if kind.get("references"):
            refs = ", ".join(f"{r.get('type')} {r.get('id')}" for r in kind["references"])
            detail += f" (missing {refs})"
        elif kind.get("message"):
            detail += f": {kind['message']}"
        parts.append(f"{err.get('type')} {err.get('id')}: {detail}")
    more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def import_objects(
    settings: DashboardsSettings, objects: Sequence[Mapping[str, Any]]
) -> ImportResult:
    """Import `objects` with overwrite; raise `DashboardsError` unless every one succeeded."""
    content = "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objects).encode()
    boundary = f"clickstream-{uuid.uuid4().hex}"
    body = multipart("file", "clickstream.ndjson", content, boundary)
    raw = _request(
        settings,
        "/api/saved_objects/_import?overwrite=true",
        body,
        f"multipart/form-data; boundary={boundary}",
        "importing saved objects",
    )
    try:
        answer = json.loads(raw)
    except ValueError:
        raise DashboardsError(
            f"importing saved objects: the answer is not JSON: {raw[:200]!r}"
        ) from None
    if not isinstance(answer, dict) or "success" not in answer:
        raise DashboardsError(f"importing saved objects: unexpected answer {answer!r:.300}")
    if answer["success"] is not True:
        errors = answer.get("errors") or []
        raise DashboardsError(
            f"OpenSearch Dashboards imported {answer.get('successCount', 0)} of {len(objects)} "
            f"saved objects; {len(errors)} failed: {_describe_errors(errors)}"
        )
    by_type: dict[str, int] = {}
    for obj in objects:
        by_type[obj["type"]] = by_type.get(obj["type"], 0) + 1
    return ImportResult(count=int(answer.get("successCount", len(objects))), by_type=by_type)


def export_objects(settings: DashboardsSettings, dashboard_id: str = DASHBOARD_ID) -> bytes:
    """The dashboard and everything it references, as the ndjson `_export` returns."""
    body = {
        "objects": [{"type": "dashboard", "id": dashboard_id}],
        "includeReferencesDeep": True,
    }
    return _request(
        settings,
        "/api/saved_objects/_export",
        json.dumps(body).encode(),
        "application/json",
        f"exporting dashboard {dashboard_id}",
    )


def install(settings: Settings, path: Path | None = None) -> ImportResult:
    """Import the saved objects into the configured Dashboards, for the configured indices."""
    objects = for_index_pattern(read_objects(path), settings.opensearch.index_pattern)
    return import_objects(settings.dashboards, objects)
