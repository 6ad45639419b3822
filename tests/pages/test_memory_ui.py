"""The tier override and the loaded-model memory table in the app's Settings accordion (gradio_client)."""

from __future__ import annotations

from pipelines.writing.models import DEBUG_ID


def _rows(table: object) -> list[list]:
    return table["data"] if isinstance(table, dict) else table


def test_tier_override_unloads_and_applies_to_later_loads(launched_app, client) -> None:
    registry = launched_app.ctx.registry
    try:
        registry.load(DEBUG_ID, "writing")
        plan_line, table = client.predict("low", api_name="/set_tier")
        assert "tier low" in plan_line and registry.loaded_ids() == [] and _rows(table) in ([], [[]])
        loaded = registry.load(DEBUG_ID, "writing")  # what a Writing request does next
        assert any("int8" in line for line in loaded.model.applied)
        plan_line, table = client.predict(api_name="/loaded_models")
        row = next(r for r in _rows(table) if r[0] == DEBUG_ID)
        assert row[1] == "low" and float(row[2]) > 0 and "int8" in row[3]
    finally:
        client.predict("auto", api_name="/set_tier")
    assert registry.plan.reason != "tier set in the UI"
