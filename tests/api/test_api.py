"""The API's routes, roles and commands against the real controller on the simulated site."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET

import pytest

from resilience.api.edxl import HAVE_NS
from resilience.model import Mode
from resilience.shelter import Headcount

from .conftest import Api

pytestmark = pytest.mark.integration


async def test_status_has_everything_the_screen_shows(api: Api) -> None:
    r = await api.client("viewer").get("/api/v1/status")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["mode"] == "grid_connected"
    assert doc["runbook"] == "/runbooks/grid_connected.md"
    assert doc["mode_since"].endswith("Z")
    assert doc["grid"]["present"] is True and doc["grid"]["voltage_v"] > 200
    assert doc["grid"]["frequency_hz"] == pytest.approx(50.0, abs=0.5)
    assert doc["supply_w"] >= 100_000
    assert doc["load_w"] > 0
    assert set(doc["tiers"]) == {"life_safety", "critical", "essential", "comfort"}
    for tier in doc["tiers"].values():
        assert {"served", "shed", "served_w", "shed_w"} <= set(tier)
    assert doc["endurance_h"] > 0
    assert doc["vehicles"]["connected"] >= 4
    assert doc["vehicles"]["energy_above_reserve_wh"] > 0
    assert isinstance(doc["alarms"], list)


async def test_no_token_no_entry_and_roles_are_enforced(api: Api) -> None:
    anonymous = api.client(role=None)
    assert (await anonymous.get("/api/v1/status")).status_code == 401
    r = await anonymous.post("/api/v1/loads/lift/shed")
    assert r.status_code == 401 and "bearer" in r.json()["detail"].lower()
    assert (await api.client(token="x" * 43).get("/api/v1/status")).status_code == 401
    viewer = api.client("viewer")
    assert (await viewer.get("/api/v1/events")).status_code == 403
    r = await viewer.post("/api/v1/loads/lift/shed")
    assert r.status_code == 403 and "role" in r.json()["detail"]
    responder = api.client("responder")
    assert (await responder.post("/api/v1/loads/lift/shed")).status_code == 403
    assert (await responder.get("/api/v1/tokens")).status_code == 403
    me = (await responder.get("/api/v1/me")).json()
    assert (
        me["role"] == "responder"
        and me["can"]["register_vehicle"]
        and not me["can"]["shed_restore"]
    )
    # the forbidden mutating calls were audited under the caller's name
    await asyncio.to_thread(api.running.store.flush, 5.0)
    audit = api.running.store.commands(limit=10)
    assert any(c.actor == "test-viewer" and c.outcome == "forbidden" for c in audit)


async def test_shed_and_restore_through_the_controller(api: Api) -> None:
    operator = api.client("operator")
    r = await operator.post("/api/v1/loads/lift/shed")
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "accepted"
    audit = api.running.store.commands(limit=1)  # committed before the answer
    assert audit[0].command == "shed_load" and audit[0].actor == "test-operator"
    api.plant.excuse_load("lift")
    await api.until(lambda: not api.plant.load_on("lift"), 5, "lift shed")
    loads = (await operator.get("/api/v1/loads")).json()["loads"]
    lift = next(x for x in loads if x["id"] == "lift")
    assert lift["locked_off"] is True
    r = await operator.post("/api/v1/loads/lift/restore")
    assert r.status_code == 200 and r.json()["outcome"] == "accepted"


async def test_keep_on_against_the_endurance_policy_is_audited_and_shown(api: Api) -> None:
    operator = api.client("operator")
    r = await operator.post("/api/v1/loads/tea_urn/keep-on")
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "accepted" and "until the grid returns" in r.json()["detail"]
    audit = api.running.store.commands(limit=1)
    assert audit[0].command == "keep_load_on" and audit[0].actor == "test-operator"
    doc = (await operator.get("/api/v1/status")).json()
    urn = next(x for x in doc["loads"] if x["id"] == "tea_urn")
    assert urn["kept_on"] is True
    # the endurance figures per circuit: the bus from its own cars, each V2L from its own
    circuits = {c["id"]: c for c in doc["circuits"]}
    assert set(circuits) == {"bus", "v2l_1", "v2l_2"}
    assert circuits["bus"]["endurance_h"] == doc["endurance_h"]
    assert (
        doc["endurance_basis"]["energy_above_reserve_wh"]
        == (circuits["bus"]["energy_above_reserve_wh"])
    )
    policy = circuits["v2l_1"]["policy"]
    assert set(policy["projection_h"]) == {"life_safety", "critical", "essential", "comfort"}
    assert policy["targets_h"]["life_safety"] == 72.0
    r = await operator.post("/api/v1/loads/tea_urn/follow-policy")
    assert r.status_code == 200 and r.json()["outcome"] == "accepted"
    r = await operator.post("/api/v1/loads/tea_urn/follow-policy")
    assert r.status_code == 409 and "not kept on" in r.json()["detail"]
    r = await operator.post("/api/v1/loads/toaster/keep-on")
    assert r.status_code == 404 and "load_id" in r.json()["detail"]
    assert (await api.client("viewer").post("/api/v1/loads/tea_urn/keep-on")).status_code == 403


async def test_refusals_are_409_and_bad_input_names_the_field(api: Api) -> None:
    operator = api.client("operator")
    r = await operator.post("/api/v1/commands/reconnect")
    assert r.status_code == 409
    assert "nothing to reconnect" in r.json()["detail"]
    r = await operator.post("/api/v1/loads/no_such_load/shed")
    assert r.status_code == 404 and r.json()["detail"].startswith("load_id:")
    r = await operator.put("/api/v1/loads/lift/tier", json={"tier": "luxury"})
    assert r.status_code == 422 and "body.tier" in r.json()["detail"]
    r = await operator.post(
        "/api/v1/vehicles",
        json={"vehicle_id": "34 ABC 12", "connector": "v2l_9", "reserve_soc_pct": 40},
    )
    assert r.status_code == 422 and r.json()["detail"].startswith("connector:")
    assert r.json()["errors"][0]["loc"] == ["body", "connector"]  # as any 422 (schema.py)
    r = await operator.post(
        "/api/v1/vehicles",
        json={
            "vehicle_id": "34 ABC 12",
            "connector": "v2l_1",
            "reserve_soc_pct": 40,
            "leaving_at": 1.0,
        },
    )  # a valid body whose time has passed: a conflict with the clock, not bad input
    assert r.status_code == 409 and r.json()["detail"].startswith("leaving_at:")
    r = await operator.post(
        "/api/v1/vehicles",
        json={"vehicle_id": "34 ABC 12", "connector": "v2l_1", "reserve_soc_pct": 140},
    )
    assert r.status_code == 422 and "body.reserve_soc_pct" in r.json()["detail"]
    r = await operator.post(
        "/api/v1/vehicles", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and "body" in r.json()["detail"]


async def test_planned_island_then_reconnect(api: Api) -> None:
    responder = api.client("responder")
    r = await responder.post("/api/v1/commands/planned-island")
    assert r.status_code == 200, r.text
    await api.mode(Mode.ISLANDED, 40)
    assert (await responder.post("/api/v1/commands/planned-island")).status_code == 409
    r = await api.client("operator").post("/api/v1/commands/reconnect")
    assert r.status_code == 200, r.text


async def test_register_and_release_a_donor_vehicle(api: Api) -> None:
    responder = api.client("responder")
    # a car that is at another connector is refused by the controller's own check
    r = await responder.post(
        "/api/v1/vehicles",
        json={"vehicle_id": "fleet_1", "connector": "charger_2", "reserve_soc_pct": 50},
    )
    assert r.status_code == 409 and "vehicle_id" in r.json()["detail"]
    leaving = api.running.controller.wall() + 3600
    r = await responder.post(
        "/api/v1/vehicles",
        json={
            "vehicle_id": "donor_v2l_1",
            "connector": "v2l_1",
            "reserve_soc_pct": 60,
            "soc_pct": 80,
            "leaving_at": leaving,
        },
    )
    assert r.status_code == 200, r.text
    await api.until(
        lambda: (
            api.running.controller.status is not None
            and any(
                o.outlet_id == "v2l_1" and o.reserve_soc_pct == 60
                for o in api.running.controller.status.snapshot.outlets
            )
        ),
        5,
        "the reserve in the snapshot",
    )
    vehicles = (await responder.get("/api/v1/vehicles")).json()["vehicles"]
    v2l = next(v for v in vehicles if v["connector"] == "v2l_1")
    assert v2l["donor"] and v2l["registered_by"] == "test-responder"
    assert (v2l["occupancy"], v2l["identified_by"]) == ("donor", "operator")
    assert v2l["leaving_at"] == pytest.approx(leaving) and not v2l["leaving"]
    fleet = next(v for v in vehicles if v["connector"] == "charger_3")
    assert (fleet["occupancy"], fleet["identified_by"], fleet["vehicle_id"]) == (
        "fleet",
        "site_file",
        "fleet_3",
    )
    assert fleet["registered_by"] is None and not fleet["keeps_everything"]
    r = await responder.post("/api/v1/vehicles/donor_v2l_1/release")
    assert r.status_code == 200, r.text
    await api.until(
        lambda: (
            api.running.controller.status is not None
            and any(
                o.outlet_id == "v2l_1" and o.reserve_soc_pct == 100 and not o.enabled
                for o in api.running.controller.status.snapshot.outlets
            )
        ),
        5,
        "the released car's outlet opened",
    )
    vehicles = (await responder.get("/api/v1/vehicles")).json()["vehicles"]
    v2l = next(v for v in vehicles if v["connector"] == "v2l_1")
    assert (v2l["occupancy"], v2l["vehicle_id"], v2l["reserve_soc_pct"]) == (
        "released",
        "donor_v2l_1",
        100.0,
    )
    assert v2l["released"] and v2l["leaving"] and v2l["keeps_everything"] and not v2l["donor"]
    r = await responder.post("/api/v1/vehicles/donor_v2l_1/release")
    assert r.status_code == 404 and r.json()["detail"].startswith("vehicle_id:")
    assert "already released" in r.json()["detail"]
    # a fleet car may be released too (its driver takes it away)
    r = await responder.post("/api/v1/vehicles/fleet_3/release")
    assert r.status_code == 200, r.text
    # a donor registered before it is plugged in waits for its car
    api.plant.unplug("v2l_2")
    await api.until(
        lambda: api.running.controller.overrides.at("v2l_2").kind.value == "empty",
        5,
        "v2l_2 seen empty",
    )
    r = await responder.post(
        "/api/v1/vehicles",
        json={"vehicle_id": "donor_v2l_2", "connector": "v2l_2", "reserve_soc_pct": 50},
    )
    assert r.status_code == 200, r.text
    vehicles = (await responder.get("/api/v1/vehicles")).json()["vehicles"]
    v2l = next(v for v in vehicles if v["connector"] == "v2l_2")
    assert (v2l["occupancy"], v2l["awaiting_car"], v2l["connected"]) == ("donor", True, False)
    api.plant.plug("v2l_2", "donor_v2l_2", 80.0, 77400.0, reserve_soc_pct=50.0)
    await api.until(
        lambda: api.running.controller.overrides.at("v2l_2").car_seen,
        5,
        "the donor's car seen at v2l_2",
    )


async def test_events_alarms_and_audit_reads(api: Api) -> None:
    responder = api.client("responder")
    await asyncio.to_thread(api.running.store.flush, 5.0)
    r = await responder.get("/api/v1/events", params={"kind": "transition", "limit": 5})
    assert r.status_code == 200
    events = r.json()["events"]
    assert events and all(e["kind"] == "transition" for e in events)
    r = await responder.get("/api/v1/events", params={"since": 1e12})
    assert r.status_code == 422 and "query.since" in r.json()["detail"]
    r = await responder.get("/api/v1/events", params={"since": "nan"})
    assert r.status_code == 422
    first = (await responder.get("/api/v1/events", params={"limit": 1})).json()
    if first["next_before_id"] is not None:
        page = await responder.get(
            "/api/v1/events", params={"limit": 1, "before_id": first["next_before_id"]}
        )
        assert page.json()["events"][0]["id"] < first["events"][0]["id"]
    assert (await responder.get("/api/v1/alarms", params={"active": True})).status_code == 200
    assert (await api.client("operator").get("/api/v1/commands")).status_code == 200


async def test_acknowledge_an_alarm(api: Api) -> None:
    api.plant.silence("pv")
    await api.until(
        lambda: (
            api.running.controller.status is not None
            and "device_unavailable:pv" in api.running.controller.status.alarms
        ),
        5,
        "pv alarm",
    )
    await asyncio.to_thread(api.running.store.flush, 5.0)
    operator = api.client("operator")
    alarms = (await operator.get("/api/v1/alarms", params={"active": True})).json()["alarms"]
    alarm = next(a for a in alarms if a["code"] == "device_unavailable:pv")
    r = await operator.post(f"/api/v1/alarms/{alarm['id']}/ack")
    assert r.status_code == 200, r.text
    r = await operator.post(f"/api/v1/alarms/{alarm['id']}/ack")
    assert r.status_code == 409
    assert (await operator.post("/api/v1/alarms/0/ack")).status_code == 422
    api.plant.clear_fault("pv")


async def test_the_shelter_headcount_is_recorded_audited_and_kept(api: Api) -> None:
    """An operator records how many people are sheltering; viewers see it, may not set it;
    bad input names the field; the audit has it; a restarted controller still knows it."""
    viewer, operator = api.client("viewer"), api.client("operator")
    status = (await viewer.get("/api/v1/status")).json()
    assert status["headcount"] is None  # never counted: null, not 0
    assert (await viewer.put("/api/v1/shelter/headcount", json={"people": 5})).status_code == 403
    bad_input = ({"people": -1}, {"people": "12"}, {"people": True}, {"people": 1.5}, {})
    for bad in (*bad_input, {"people": 100_001}, {"people": 3, "more": 1}):
        r = await operator.put("/api/v1/shelter/headcount", json=bad)
        assert r.status_code == 422 and "body." in r.json()["detail"], (bad, r.text)
    r = await operator.put("/api/v1/shelter/headcount", json={"people": 137})
    assert r.status_code == 200 and r.json()["detail"] == "137 people sheltering here"
    counted = (await viewer.get("/api/v1/status")).json()["headcount"]
    assert counted["people"] == 137 and counted["by"] == "test-operator"
    audit = (await operator.get("/api/v1/commands")).json()["commands"]
    assert [(c["command"], c["args"], c["outcome"]) for c in audit[:1]] == [
        ("set_headcount", {"people": 137}, "accepted")
    ]
    assert any(c["command"] == "PUT /api/v1/shelter/headcount" for c in audit)  # the viewer's
    stored = api.running.store.get_state("headcount")  # committed before the answer
    assert stored == counted
    assert Headcount.from_state(stored) == api.running.controller.headcount  # what a restart reads


async def test_tokens_admin_routes(api: Api) -> None:
    admin = api.client("admin")
    r = await admin.post("/api/v1/tokens", json={"name": "tablet-1", "role": "viewer"})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    viewer = api.client(token=token)
    assert (await viewer.get("/api/v1/status")).status_code == 200
    assert (
        await admin.post("/api/v1/tokens", json={"name": "tablet-1", "role": "viewer"})
    ).status_code == 409
    names = [t["name"] for t in (await admin.get("/api/v1/tokens")).json()["tokens"]]
    assert "tablet-1" in names and "test-admin" in names
    assert "token" not in json.dumps(
        (await admin.get("/api/v1/tokens")).json()["tokens"][0]
    ).replace('"tokens"', "")
    r = await admin.delete("/api/v1/tokens/tablet-1")
    assert r.status_code == 200
    assert (await viewer.get("/api/v1/status")).status_code == 401  # at once: no cache
    assert (await admin.delete("/api/v1/tokens/tablet-1")).status_code == 404
    assert (await admin.delete("/api/v1/tokens/test-admin")).status_code == 409
    r = await admin.post("/api/v1/tokens", json={"name": "x", "role": "root"})
    assert r.status_code == 422 and "body.role" in r.json()["detail"]
    audit = api.running.store.commands(limit=10)
    assert any(c.command == "token_create" and c.actor == "test-admin" for c in audit)
    assert any(c.command == "token_revoke" and c.outcome == "accepted" for c in audit)


async def test_edxl_have_export_is_well_formed(api: Api) -> None:
    responder = api.client("responder")
    r = await responder.get("/api/v1/export/edxl-have")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(r.content)
    ns = {"have": HAVE_NS}
    assert root.tag == f"{{{HAVE_NS}}}HospitalStatus"
    name = root.find(
        "have:Hospital/have:Organization/have:OrganizationInformation/have:OrganizationName", ns
    )
    assert name is not None and "Kadıköy" in (name.text or "")
    status = root.find("have:Hospital/have:Status/have:FacilityStatus", ns)
    assert status is not None and status.text == "Normal"
    api.plant.grid_loss()
    await api.mode(Mode.ISLANDED, 5)
    root = ET.fromstring((await responder.get("/api/v1/export/edxl-have")).content)
    status = root.find("have:Hospital/have:Status/have:FacilityStatus", ns)
    assert status is not None and status.text == "Compromised"
    hours = root.find("have:Hospital/have:ServiceCapacity/have:EnduranceHours", ns)
    assert hours is not None and float(hours.text or "0") > 0


async def test_runbooks_and_ui_are_served_without_a_token(api: Api) -> None:
    anonymous = api.client(role=None)
    r = await anonymous.get("/runbooks/islanded.md")
    assert r.status_code == 200 and "<h1" in r.text and "ISLANDED" in r.text
    assert (await anonymous.get("/runbooks/../pyproject.toml")).status_code == 404
    assert (await anonymous.get("/runbooks/nope.md")).status_code == 404
    schema = (await anonymous.get("/api/v1/openapi.json")).json()
    assert all(path.startswith("/api/v1/") for path in schema["paths"])


async def test_the_schema_documents_the_error_bodies_the_api_sends(api: Api) -> None:
    schema = (await api.client(role=None).get("/api/v1/openapi.json")).json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    problem = schema["components"]["schemas"]["ValidationProblem"]
    assert {"detail", "errors"} <= set(problem["required"])
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status in ("401", "403", "422"):
                assert status in responses, (method, path, status)
            ref = responses["422"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ValidationProblem"), (method, path)
    shed = schema["paths"]["/api/v1/loads/{load_id}/shed"]["post"]
    assert "lift" in shed["parameters"][0]["schema"]["enum"]  # the site's ids
    connector = schema["components"]["schemas"]["RegisterBody"]["properties"]["connector"]
    assert "v2l_1" in connector["enum"]


async def test_keep_alive_answers_are_not_held_by_nagle(api: Api) -> None:
    viewer = api.client("viewer")
    await viewer.get("/api/v1/status")  # one connection, kept alive
    times = []
    for _ in range(9):
        start = asyncio.get_running_loop().time()
        assert (await viewer.get("/api/v1/status")).status_code == 200
        times.append(asyncio.get_running_loop().time() - start)
    assert sorted(times)[4] < 0.02  # a delayed ACK would hold each answer ~40 ms


async def test_status_says_riding_through_and_why_the_site_waits(api: Api) -> None:
    """Issue 11: 50.7 Hz is outside the reference site's enter-service window (49.5-50.5 Hz)
    but inside its must-trip table (EN 50549: OF1 51.5 Hz): connected, riding through; once
    islanded, the grid back at 50.7 Hz keeps the site waiting, and /status says why."""
    viewer = api.client("viewer")
    api.plant.set_grid_frequency(50.7)

    def grid_seen_at(hz: float) -> bool:
        status = api.running.controller.status
        grid = status.snapshot.grid if status is not None else None
        return grid is not None and abs(grid.frequency_hz - hz) < 0.01

    await api.until(lambda: grid_seen_at(50.7), 5, "the meter at 50.7 Hz")
    doc = (await viewer.get("/api/v1/status")).json()
    assert doc["mode"] == "grid_connected"
    assert doc["grid"]["healthy"] is False and doc["grid"]["riding_through"] is True
    assert doc["grid"]["waiting_reason"] is None
    assert doc["supply_w"] >= 100_000  # the grid still supplies the site
    api.plant.grid_loss()
    await api.mode(Mode.ISLANDED, 5)
    api.plant.grid_return()

    def waiting() -> bool:
        status = api.running.controller.status
        return status is not None and "grid_outside_enter_service" in status.alarms

    await api.until(waiting, 5, "the waiting alarm")
    doc = (await viewer.get("/api/v1/status")).json()
    assert doc["mode"] == "islanded"
    assert doc["grid"]["waiting_reason"] == (
        "frequency 50.70 Hz above the enter-service limit 50.5 Hz"
    )
    assert [a["code"] for a in doc["alarms"]].count("grid_outside_enter_service") == 1
    api.plant.set_grid_frequency(50.0)
    await api.until(lambda: not waiting(), 5, "the waiting alarm cleared")
    doc = (await viewer.get("/api/v1/status")).json()
    assert doc["grid"]["waiting_reason"] is None
