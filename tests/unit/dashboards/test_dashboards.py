"""The saved objects shipped with the package: OpenSearch Dashboards' format,
fields that exist in the index template, and the pure query building and flattening behind
them."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path

import pytest

from clickstream.dashboards import charts, model, saved_objects
from clickstream.errors import ConfigError
from clickstream.sinks.opensearch.client import index_template

ROOT = Path(__file__).resolve().parents[3]
NDJSON = saved_objects.DEFAULT_FILE
PROPERTIES = index_template("clickstream-events")["template"]["mappings"]["properties"]
JSON_STRINGS: dict[str, list[tuple[str, ...]]] = {
    "index-pattern": [("fields",)],
    "visualization": [
        ("visState",),
        ("uiStateJSON",),
        ("kibanaSavedObjectMeta", "searchSourceJSON"),
    ],
    "dashboard": [("panelsJSON",), ("optionsJSON",), ("kibanaSavedObjectMeta", "searchSourceJSON")],
}
MIGRATION = {"index-pattern": "7.6.0", "visualization": "7.10.0", "dashboard": "7.9.3"}


@pytest.fixture(scope="module")
def objects():
    return saved_objects.read_objects(NDJSON)


@pytest.fixture(scope="module")
def visualizations(objects):
    return saved_objects.dashboard_visualizations(objects)


def _attr(obj, keys):
    value = obj["attributes"]
    for key in keys:
        value = value[key]
    return value


class TestSavedObjectFormat:
    def test_every_line_is_a_saved_object(self):
        """Each line is one JSON object with type, id, attributes, references, migrationVersion."""
        lines = NDJSON.read_text(encoding="utf-8").splitlines()
        assert len(lines) == 10
        for line in lines:
            obj = json.loads(line)
            assert set(obj) == {"attributes", "id", "migrationVersion", "references", "type"}
            assert obj["migrationVersion"] == {obj["type"]: MIGRATION[obj["type"]]}

    def test_json_attributes_are_json_strings(self, objects):
        """visState, uiStateJSON, panelsJSON, optionsJSON, searchSourceJSON and fields are
        strings holding JSON, as the saved-objects API stores them."""
        for obj in objects:
            for keys in JSON_STRINGS[obj["type"]]:
                value = _attr(obj, keys)
                assert isinstance(value, str), (obj["id"], keys)
                json.loads(value)

    def test_references_resolve(self, objects):
        """Every reference names an object in the file with the right type, and every
        indexRefName / panelRefName has a reference."""
        present = {(o["type"], o["id"]) for o in objects}
        for obj in objects:
            names = {r["name"] for r in obj["references"]}
            for ref in obj["references"]:
                assert (ref["type"], ref["id"]) in present, ref
            if obj["type"] == "visualization":
                source = json.loads(_attr(obj, ("kibanaSavedObjectMeta", "searchSourceJSON")))
                assert "index" not in source  # named through references only
                assert source["indexRefName"] in names
                for item in source["filter"]:
                    assert item["meta"]["indexRefName"] in names
            if obj["type"] == "dashboard":
                for panel in json.loads(obj["attributes"]["panelsJSON"]):
                    assert panel["panelRefName"] in names

    def test_vis_state_title_matches(self, objects):
        """A visualization's visState carries its own title and type."""
        for obj in objects:
            if obj["type"] == "visualization":
                state = json.loads(obj["attributes"]["visState"])
                assert state["title"] == obj["attributes"]["title"]
                assert state["type"] in {
                    "pie",
                    "line",
                    "horizontal_bar",
                    "heatmap",
                    "table",
                    "metric",
                }
                assert all(agg["id"] and agg["schema"] for agg in state["aggs"])

    def test_index_pattern(self, objects):
        """The index pattern covers clickstream-events-* with `timestamp` as its time field,
        and lists every mapped field with the type Dashboards gives it."""
        (pattern,) = [o for o in objects if o["type"] == "index-pattern"]
        assert pattern["attributes"]["title"] == "clickstream-events-*"
        assert pattern["attributes"]["timeFieldName"] == "timestamp"
        fields = {f["name"]: f for f in json.loads(pattern["attributes"]["fields"])}
        mapped = saved_objects.mapped_fields(PROPERTIES)
        assert set(mapped) <= set(fields)
        osd_type = {"keyword": "string", "text": "string", "date": "date", "ip": "ip"}
        for name, kind in mapped.items():
            assert fields[name]["esTypes"] == [kind]
            assert fields[name]["type"] == osd_type.get(kind, "number")
            assert fields[name]["aggregatable"] is (kind != "text")
        assert fields["article_title.keyword"]["subType"] == {"multi": {"parent": "article_title"}}

    def test_dashboard_grid(self, objects):
        """Panels fit the 48-column grid without overlapping; `i` matches panelIndex."""
        (board,) = [o for o in objects if o["type"] == "dashboard"]
        panels = json.loads(board["attributes"]["panelsJSON"])
        assert len(panels) == 8
        cells: set[tuple[int, int]] = set()
        for panel in panels:
            g = panel["gridData"]
            assert g["i"] == panel["panelIndex"]
            assert g["x"] >= 0
            assert g["x"] + g["w"] <= 48
            area = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not cells & area, panel
            cells |= area
        assert board["attributes"]["timeRestore"] is True

    def test_committed_file_is_reproducible(self):
        """dashboards/build.py writes exactly the committed ndjson."""
        spec = importlib.util.spec_from_file_location("build", ROOT / "dashboards" / "build.py")
        assert spec is not None
        assert spec.loader is not None
        build = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(build)
        assert build.build() == NDJSON.read_text(encoding="utf-8")

    def test_export_summary_line_is_skipped(self, tmp_path):
        """An `_export` file's trailing summary line is not taken for a saved object."""
        exported = tmp_path / "export.ndjson"
        summary = '{"exportedCount":10,"missingRefCount":0,"missingReferences":[]}\n'
        exported.write_text(NDJSON.read_text(encoding="utf-8") + summary, encoding="utf-8")
        assert len(saved_objects.read_objects(exported)) == 10

    def test_broken_file_is_reported_with_its_line(self, tmp_path):
        """A line that is not JSON is reported with the file and line number."""
        broken = tmp_path / "broken.ndjson"
        broken.write_text('{"type":"index-pattern","id":"x","attributes":{}}\n{nope\n')
        with pytest.raises(ConfigError, match=r"broken.ndjson:2 is not JSON"):
            saved_objects.read_objects(broken)


class TestVisualizations:
    def test_the_dashboard_has_every_chart(self, visualizations):
        """Events by type (pie), volume over time by type (line), most active users (bar),
        device by category (heatmap), most read/liked/commented (tables), unique users and
        sessions (metric)."""
        kinds = {v.id: v.type for v in visualizations}
        assert kinds == {
            "clickstream-unique-users-sessions": "metric",
            "clickstream-events-by-type": "pie",
            "clickstream-most-active-users": "horizontal_bar",
            "clickstream-event-volume": "line",
            "clickstream-device-by-category": "heatmap",
            "clickstream-most-read": "table",
            "clickstream-most-liked": "table",
            "clickstream-most-commented": "table",
        }
        filtered = {v.id: v.filters[0].query for v in visualizations if v.filters}
        assert filtered == {
            "clickstream-most-read": {"match_phrase": {"event_type": "page_view"}},
            "clickstream-most-liked": {"match_phrase": {"event_type": "like"}},
            "clickstream-most-commented": {"match_phrase": {"event_type": "comment"}},
        }

    def test_fields_exist_with_compatible_types(self, visualizations):
        """Every field an aggregation or filter names is in the index template, with a type
        that aggregation can use."""
        for vis in visualizations:
            assert saved_objects.field_problems(vis, PROPERTIES) == []

    def test_field_checker_catches_mistakes(self, visualizations):
        """A terms agg on a text field, a date histogram on a keyword and a missing field are
        each reported."""
        pie = next(v for v in visualizations if v.type == "pie")
        bad = [
            {**pie.aggs[1], "params": {**pie.aggs[1]["params"], "field": "comment_text"}},
            {
                "id": "9",
                "type": "date_histogram",
                "schema": "segment",
                "params": {"field": "user_id"},
            },
            {"id": "8", "type": "cardinality", "schema": "metric", "params": {"field": "nope"}},
        ]
        broken = saved_objects.Visualization(**{**pie.__dict__, "aggs": bad})
        problems = saved_objects.field_problems(broken, PROPERTIES)
        assert len(problems) == 3
        assert "comment_text (text)" in problems[0]
        assert "user_id (keyword)" in problems[1]
        assert "lacks" in problems[2]

    def test_query_strings_are_refused(self, objects):
        """A visualization with a query string (not renderable offline) fails clearly."""
        vis = next(o for o in objects if o["type"] == "visualization")
        source = json.dumps({"query": {"query": "x:1", "language": "kuery"}, "filter": []})
        changed = {**vis, "attributes": {**vis["attributes"]}}
        changed["attributes"]["kibanaSavedObjectMeta"] = {"searchSourceJSON": source}
        with pytest.raises(ConfigError, match="query string"):
            saved_objects.decode_visualization(changed)

    def test_import_renames_the_pattern_for_another_prefix(self, objects):
        """Importing for prefix `shop` retitles the index pattern `shop-*`, nothing else."""
        renamed = saved_objects.for_index_pattern(objects, "shop-*")
        titles = [o["attributes"]["title"] for o in renamed if o["type"] == "index-pattern"]
        assert titles == ["shop-*"]
        assert renamed[1:] == objects[1:]


def _vis(visualizations, vis_id):
    return next(v for v in visualizations if v.id == vis_id)


SPAN = model.TimeRange(
    dt.datetime(2026, 1, 1, 8, tzinfo=dt.UTC), dt.datetime(2026, 1, 1, 14, tzinfo=dt.UTC)
)


class TestSearchBody:
    def test_line_chart_nests_terms_in_a_date_histogram(self, visualizations):
        """Volume by type: a date histogram (auto interval for the span) with a terms agg
        inside, ordered by count, and the time range as a filter."""
        body = charts.search_body(_vis(visualizations, "clickstream-event-volume"), SPAN)
        histogram = body["aggs"]["2"]
        assert histogram["date_histogram"]["field"] == "timestamp"
        assert histogram["date_histogram"]["fixed_interval"] == "10m"
        assert histogram["aggs"]["3"]["terms"] == {
            "field": "event_type",
            "size": 10,
            "order": {"_count": "desc"},
        }
        assert body["query"]["bool"]["filter"] == [
            {
                "range": {
                    "timestamp": {
                        "gte": "2026-01-01T08:00:00.000Z",
                        "lte": "2026-01-01T14:00:00.000Z",
                        "format": "strict_date_optional_time",
                    }
                }
            }
        ]
        assert body["size"] == 0

    def test_filtered_table(self, visualizations):
        """Most liked: the saved filter becomes a query filter; readers are a cardinality
        inside each title bucket."""
        body = charts.search_body(_vis(visualizations, "clickstream-most-liked"), None)
        assert body["query"]["bool"]["filter"] == [{"match_phrase": {"event_type": "like"}}]
        terms = body["aggs"]["2"]
        assert terms["terms"]["field"] == "article_title.keyword"
        assert terms["aggs"]["3"] == {"cardinality": {"field": "user_id"}}

    def test_metric_without_buckets(self, visualizations):
        """Unique users and sessions: top-level cardinalities and the total hit count."""
        body = charts.search_body(_vis(visualizations, "clickstream-unique-users-sessions"), None)
        assert body["aggs"] == {
            "1": {"cardinality": {"field": "user_id"}},
            "2": {"cardinality": {"field": "session_id"}},
        }
        assert body["track_total_hits"] is True

    @pytest.mark.parametrize(
        ("seconds", "interval"),
        [
            (0, "100ms"),
            (5, "100ms"),
            (10, "500ms"),
            (60, "1s"),
            (3600, "1m"),
            (6 * 3600, "10m"),
            (86400, "30m"),
            (30 * 86400, "12h"),
        ],
    )
    def test_auto_interval(self, seconds, interval):
        """`auto` gives at most 60 buckets over the span, with a round interval."""
        assert charts.auto_interval(seconds) == interval

    def test_since(self):
        """--since takes a duration back from now or an ISO time; anything else is refused."""
        now = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
        assert charts.parse_since("1h", now) == dt.datetime(2026, 1, 1, 11, tzinfo=dt.UTC)
        assert charts.parse_since("90m", now) == dt.datetime(2026, 1, 1, 10, 30, tzinfo=dt.UTC)
        assert charts.parse_since("2d", now) == dt.datetime(2025, 12, 30, 12, tzinfo=dt.UTC)
        assert charts.parse_since("2026-01-01T06:00:00Z", now).hour == 6
        with pytest.raises(ConfigError, match="duration"):
            charts.parse_since("yesterday", now)


class TestTabify:
    def test_nested_buckets_become_rows(self, visualizations):
        """Date buckets and type buckets flatten into (time, type, count) rows."""
        vis = _vis(visualizations, "clickstream-event-volume")
        response = {
            "hits": {"total": {"value": 5}},
            "aggregations": {
                "2": {
                    "buckets": [
                        {
                            "key": 1767254400000,
                            "doc_count": 3,
                            "3": {
                                "buckets": [
                                    {"key": "login", "doc_count": 2},
                                    {"key": "like", "doc_count": 1},
                                ]
                            },
                        },
                        {
                            "key": 1767258000000,
                            "doc_count": 2,
                            "3": {"buckets": [{"key": "login", "doc_count": 2}]},
                        },
                    ]
                }
            },
        }
        assert charts.tabify(vis, response) == [
            ["2026-01-01T08:00:00Z", "login", 2],
            ["2026-01-01T08:00:00Z", "like", 1],
            ["2026-01-01T09:00:00Z", "login", 2],
        ]

    def test_metrics_without_buckets(self, visualizations):
        """One row: the cardinalities, then the count from hits.total."""
        vis = _vis(visualizations, "clickstream-unique-users-sessions")
        response = {
            "hits": {"total": {"value": 42}},
            "aggregations": {"1": {"value": 7}, "2": {"value": 9}},
        }
        assert charts.tabify(vis, response) == [[7, 9, 42]]

    def test_table_rows(self, visualizations):
        """A table row is the title, its count and its distinct users."""
        vis = _vis(visualizations, "clickstream-most-read")
        response = {
            "hits": {"total": {"value": 9}},
            "aggregations": {"2": {"buckets": [{"key": "A", "doc_count": 6, "3": {"value": 4}}]}},
        }
        chart = charts.chart(vis, response, None)
        assert chart.rows == [["A", 6, 4]]
        assert [c.label for c in chart.columns] == ["Article", "Reads", "Readers"]
