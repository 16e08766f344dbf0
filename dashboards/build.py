"""Writes clickstream/dashboards/clickstream.ndjson: the OpenSearch Dashboards saved objects.

The committed ndjson is what `clickstream dashboards import` and `render` read; this script
only keeps it reproducible (`python dashboards/build.py` rewrites it, `--check` compares).
The objects follow the saved-object export format of OpenSearch Dashboards 2.x: JSON-encoded
strings for `visState`, `uiStateJSON`, `panelsJSON`, `optionsJSON` and
`kibanaSavedObjectMeta.searchSourceJSON`; index patterns named through `references`
(`indexRefName`, `panelRefName`), and the `migrationVersion` of each type.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clickstream.sinks.opensearch.client import index_template

OUT = Path(__file__).resolve().parent.parent / "clickstream" / "dashboards" / "clickstream.ndjson"
PREFIX = "clickstream-events"
PATTERN_ID = "clickstream-events"
#: The version of OpenSearch Dashboards recorded in each dashboard panel.
OSD_VERSION = "2.19.1"
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"

_OSD_TYPES = {
    "keyword": "string",
    "text": "string",
    "date": "date",
    "ip": "ip",
    "short": "number",
    "integer": "number",
    "long": "number",
    "float": "number",
    "double": "number",
    "boolean": "boolean",
}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _field(name: str, es_type: str, **extra: Any) -> dict[str, Any]:
    aggregatable = es_type != "text"
    return {
        "count": 0,
        "name": name,
        "type": _OSD_TYPES[es_type],
        "esTypes": [es_type],
        "scripted": False,
        "searchable": True,
        "aggregatable": aggregatable,
        "readFromDocValues": aggregatable,
        **extra,
    }


def index_pattern_fields() -> list[dict[str, Any]]:
    """The index pattern's field list, derived from the index template's mapping."""
    meta = [
        {"name": "_id", "type": "string", "esTypes": ["_id"], "agg": True},
        {"name": "_index", "type": "string", "esTypes": ["_index"], "agg": True},
        {"name": "_score", "type": "number", "esTypes": None, "agg": False},
        {"name": "_source", "type": "_source", "esTypes": ["_source"], "agg": False},
        {"name": "_type", "type": "string", "esTypes": ["_type"], "agg": True},
    ]
    fields: list[dict[str, Any]] = []
    for m in meta:
        spec: dict[str, Any] = {"count": 0, "name": m["name"], "type": m["type"]}
        if m["esTypes"] is not None:
            spec["esTypes"] = m["esTypes"]
        spec.update(
            scripted=False,
            searchable=m["name"] not in ("_score", "_source"),
            aggregatable=m["agg"],
            readFromDocValues=False,
        )
        fields.append(spec)
    properties = index_template(PREFIX)["template"]["mappings"]["properties"]
    for name, mapping in sorted(properties.items()):
        fields.append(_field(name, mapping["type"]))
        for sub, sub_mapping in sorted(mapping.get("fields", {}).items()):
            fields.append(
                _field(f"{name}.{sub}", sub_mapping["type"], subType={"multi": {"parent": name}})
            )
    return fields


def index_pattern() -> dict[str, Any]:
    return {
        "attributes": {
            "fields": _dumps(index_pattern_fields()),
            "timeFieldName": "timestamp",
            "title": f"{PREFIX}-*",
        },
        "id": PATTERN_ID,
        "migrationVersion": {"index-pattern": "7.6.0"},
        "references": [],
        "type": "index-pattern",
    }


# -- aggregations, as the visualize editor writes them ---------------------------------------


def count(agg_id: str, label: str = "") -> dict[str, Any]:
    params = {"customLabel": label} if label else {}
    return {"id": agg_id, "enabled": True, "type": "count", "params": params, "schema": "metric"}


def cardinality(agg_id: str, field: str, label: str) -> dict[str, Any]:
    return {
        "id": agg_id,
        "enabled": True,
        "type": "cardinality",
        "params": {"field": field, "customLabel": label},
        "schema": "metric",
    }


def terms(agg_id: str, field: str, size: int, schema: str, label: str) -> dict[str, Any]:
    return {
        "id": agg_id,
        "enabled": True,
        "type": "terms",
        "params": {
            "field": field,
            "orderBy": "1",
            "order": "desc",
            "size": size,
            "otherBucket": False,
            "otherBucketLabel": "Other",
            "missingBucket": False,
            "missingBucketLabel": "Missing",
            "customLabel": label,
        },
        "schema": schema,
    }


def date_histogram(agg_id: str) -> dict[str, Any]:
    return {
        "id": agg_id,
        "enabled": True,
        "type": "date_histogram",
        "params": {
            "field": "timestamp",
            "timeRange": {"from": "now-24h", "to": "now"},
            "useNormalizedOpenSearchInterval": True,
            "scaleMetricValues": False,
            "interval": "auto",
            "drop_partials": False,
            "min_doc_count": 1,
            "extended_bounds": {},
            "customLabel": "Time",
        },
        "schema": "segment",
    }


# -- visualization params, as the visualize editor writes them ------------------------------


def _axes(category_position: str, value_position: str, value_title: str) -> dict[str, Any]:
    return {
        "categoryAxes": [
            {
                "id": "CategoryAxis-1",
                "type": "category",
                "position": category_position,
                "show": True,
                "style": {},
                "scale": {"type": "linear"},
                "labels": {"show": True, "filter": True, "truncate": 100},
                "title": {},
            }
        ],
        "valueAxes": [
            {
                "id": "ValueAxis-1",
                "name": "LeftAxis-1",
                "type": "value",
                "position": value_position,
                "show": True,
                "style": {},
                "scale": {"type": "linear", "mode": "normal"},
                "labels": {"show": True, "rotate": 0, "filter": False, "truncate": 100},
                "title": {"text": value_title},
            }
        ],
    }


def _xy_params(kind: str, category: str, value: str, title: str, label: str) -> dict[str, Any]:
    return {
        "type": kind,
        "grid": {"categoryLines": False},
        **_axes(category, value, title),
        "seriesParams": [
            {
                "show": True,
                "type": "line" if kind == "line" else "histogram",
                "mode": "normal",
                "data": {"label": label, "id": "1"},
                "valueAxis": "ValueAxis-1",
                "drawLinesBetweenPoints": True,
                "lineWidth": 2,
                "interpolate": "linear",
                "showCircles": True,
            }
        ],
        "addTooltip": True,
        "addLegend": True,
        "legendPosition": "right",
        "times": [],
        "addTimeMarker": False,
        "labels": {"show": kind != "line"},
        "thresholdLine": {
            "show": False,
            "value": 10,
            "width": 1,
            "style": "full",
            "color": "#E7664C",
        },
    }


PIE = {
    "type": "pie",
    "addTooltip": True,
    "addLegend": True,
    "legendPosition": "right",
    "isDonut": True,
    "labels": {"show": True, "values": True, "last_level": True, "truncate": 100},
}
TABLE = {
    "perPage": 10,
    "showPartialRows": False,
    "showMetricsAtAllLevels": False,
    "showTotal": False,
    "totalFunc": "sum",
    "percentageCol": "",
}
METRIC = {
    "addTooltip": True,
    "addLegend": False,
    "type": "metric",
    "metric": {
        "percentageMode": False,
        "useRanges": False,
        "colorSchema": "Green to Red",
        "metricColorMode": "None",
        "colorsRange": [{"from": 0, "to": 10000}],
        "labels": {"show": True},
        "invertColors": False,
        "style": {
            "bgFill": "#000",
            "bgColor": False,
            "labelColor": False,
            "subText": "",
            "fontSize": 48,
        },
    },
}
HEATMAP = {
    "type": "heatmap",
    "addTooltip": True,
    "addLegend": True,
    "enableHover": False,
    "legendPosition": "right",
    "times": [],
    "colorsNumber": 5,
    "colorSchema": "Blues",
    "setColorRange": False,
    "colorsRange": [],
    "invertColors": False,
    "percentageMode": False,
    "valueAxes": [
        {
            "show": False,
            "id": "ValueAxis-1",
            "type": "value",
            "scale": {"type": "linear", "defaultYExtents": False},
            "labels": {"show": True, "rotate": 0, "overwriteColor": False, "color": "black"},
        }
    ],
}


def _phrase_filter(position: int, field: str, value: str) -> dict[str, Any]:
    return {
        "meta": {
            "alias": None,
            "negate": False,
            "disabled": False,
            "type": "phrase",
            "key": field,
            "params": {"query": value},
            "indexRefName": f"kibanaSavedObjectMeta.searchSourceJSON.filter[{position}].meta.index",
        },
        "query": {"match_phrase": {field: value}},
        "$state": {"store": "appState"},
    }


def visualization(
    vis_id: str,
    title: str,
    description: str,
    vis_type: str,
    params: dict[str, Any],
    aggs: list[dict[str, Any]],
    *,
    only: tuple[str, str] | None = None,
) -> dict[str, Any]:
    filters = [_phrase_filter(0, *only)] if only else []
    search_source = {
        "query": {"query": "", "language": "kuery"},
        "filter": filters,
        "indexRefName": INDEX_REF,
    }
    references = [{"id": PATTERN_ID, "name": INDEX_REF, "type": "index-pattern"}]
    references += [
        {"id": PATTERN_ID, "name": f["meta"]["indexRefName"], "type": "index-pattern"}
        for f in filters
    ]
    vis_state = {"title": title, "type": vis_type, "aggs": aggs, "params": params}
    return {
        "attributes": {
            "description": description,
            "kibanaSavedObjectMeta": {"searchSourceJSON": _dumps(search_source)},
            "title": title,
            "uiStateJSON": "{}",
            "version": 1,
            "visState": _dumps(vis_state),
        },
        "id": vis_id,
        "migrationVersion": {"visualization": "7.10.0"},
        "references": references,
        "type": "visualization",
    }


def _article_table(vis_id: str, title: str, event_type: str, what: str, who: str) -> dict[str, Any]:
    return visualization(
        vis_id,
        title,
        f"Articles with the most {event_type} events, and how many users made them.",
        "table",
        TABLE,
        [
            count("1", what),
            cardinality("3", "user_id", who),
            terms("2", "article_title.keyword", 10, "bucket", "Article"),
        ],
        only=("event_type", event_type),
    )


VISUALIZATIONS = [
    visualization(
        "clickstream-unique-users-sessions",
        "Clickstream: unique users and sessions",
        "Distinct users and sessions, and all events, in the time range.",
        "metric",
        METRIC,
        [
            cardinality("1", "user_id", "Unique users"),
            cardinality("2", "session_id", "Sessions"),
            count("3", "Events"),
        ],
    ),
    visualization(
        "clickstream-events-by-type",
        "Clickstream: events by type",
        "Share of each event type: logins, page views, likes, comments, shares, logouts.",
        "pie",
        PIE,
        [count("1", "Events"), terms("2", "event_type", 10, "segment", "Event type")],
    ),
    visualization(
        "clickstream-most-active-users",
        "Clickstream: most active users",
        "The ten users with the most events.",
        "horizontal_bar",
        _xy_params("histogram", "left", "bottom", "Events", "Events"),
        [count("1", "Events"), terms("2", "user_id", 10, "segment", "User")],
    ),
    visualization(
        "clickstream-event-volume",
        "Clickstream: event volume by type",
        "Events over time, one line per event type.",
        "line",
        _xy_params("line", "bottom", "left", "Events", "Events"),
        [count("1", "Events"), date_histogram("2"), terms("3", "event_type", 10, "group", "Type")],
    ),
    visualization(
        "clickstream-device-by-category",
        "Clickstream: device type by article category",
        "Article events per category (columns) and device type (rows).",
        "heatmap",
        HEATMAP,
        [
            count("1", "Events"),
            terms("2", "category", 10, "segment", "Category"),
            terms("3", "device_type", 5, "group", "Device"),
        ],
    ),
    _article_table(
        "clickstream-most-read", "Clickstream: most read articles", "page_view", "Reads", "Readers"
    ),
    _article_table(
        "clickstream-most-liked", "Clickstream: most liked articles", "like", "Likes", "Users"
    ),
    _article_table(
        "clickstream-most-commented",
        "Clickstream: most commented articles",
        "comment",
        "Comments",
        "Commenters",
    ),
]

#: (visualization id, x, y, w, h) on the dashboard's 48-column grid.
LAYOUT = [
    ("clickstream-unique-users-sessions", 0, 0, 16, 10),
    ("clickstream-events-by-type", 16, 0, 16, 10),
    ("clickstream-most-active-users", 32, 0, 16, 10),
    ("clickstream-event-volume", 0, 10, 48, 14),
    ("clickstream-device-by-category", 0, 24, 24, 14),
    ("clickstream-most-read", 24, 24, 24, 14),
    ("clickstream-most-liked", 0, 38, 24, 14),
    ("clickstream-most-commented", 24, 38, 24, 14),
]


def dashboard() -> dict[str, Any]:
    panels = []
    references = []
    for n, (vis_id, x, y, w, h) in enumerate(LAYOUT):
        index = str(n + 1)
        panels.append(
            {
                "version": OSD_VERSION,
                "gridData": {"x": x, "y": y, "w": w, "h": h, "i": index},
                "panelIndex": index,
                "embeddableConfig": {},
                "panelRefName": f"panel_{n}",
            }
        )
        references.append({"name": f"panel_{n}", "type": "visualization", "id": vis_id})
    return {
        "attributes": {
            "description": "What the news site's users do: who, what, when, on which device.",
            "hits": 0,
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": _dumps(
                    {"query": {"language": "kuery", "query": ""}, "filter": []}
                )
            },
            "optionsJSON": _dumps({"hidePanelTitles": False, "useMargins": True}),
            "panelsJSON": _dumps(panels),
            "refreshInterval": {"pause": False, "value": 10000},
            "timeFrom": "now-24h",
            "timeRestore": True,
            "timeTo": "now",
            "title": "Clickstream: news-site activity",
            "version": 1,
        },
        "id": "clickstream-activity",
        "migrationVersion": {"dashboard": "7.9.3"},
        "references": references,
        "type": "dashboard",
    }


def build() -> str:
    """The ndjson text: the index pattern, the visualizations, then the dashboard."""
    objects = [index_pattern(), *VISUALIZATIONS, dashboard()]
    return "".join(_dumps(o) + "\n" for o in objects)


def main(argv: list[str]) -> int:
    text = build()
    if "--check" in argv:
        same = OUT.is_file() and OUT.read_text(encoding="utf-8") == text
        print(f"{OUT.name} is {'up to date' if same else 'out of date'}")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
