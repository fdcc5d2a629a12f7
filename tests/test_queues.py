"""Emergency runs come first: `regflow deploy` puts the `emergency` queue (the
emergency-response deployment and the incident actions) before `default` (everything
else) in the `regflow` pool, so a worker with a free slot takes an incident's run
before any queued enforcement run; and enforcement runs never hold every slot (the
`default` queue's limit). That an incident's run overtakes 200 queued case runs is
shown on the production topology (tests/test_topology.py)."""

from __future__ import annotations

from tests.conftest import prefect_client


def test_the_emergency_queue_comes_first_and_holds_the_emergency_deployments(deployed):
    from tasks.automations import ensure_queues

    with_client = prefect_client()
    read = with_client.read_work_queues(work_pool_name="regflow")
    queues = {q.name: q.priority for q in read}
    assert queues["emergency"] < queues["default"], queues
    assert {q.name: q.concurrency_limit for q in read} == {"emergency": None, "default": 2}
    for name in ("emergency-response", "incident-close", "incident-release", "incident-relevel"):
        assert with_client.read_deployment_by_name(f"{name}/{name}").work_queue_name == "emergency", name
    for name in ("enforcement-case", "complaint-handling", "spot-check-sample", "penalty-publication"):
        assert with_client.read_deployment_by_name(f"{name}/{name}").work_queue_name == "default", name
    # Kept as it is by a second deploy; put back if someone reorders the queues.
    default = with_client.read_work_queue_by_name("default", work_pool_name="regflow")
    with_client.update_work_queue(default.id, priority=1, concurrency_limit=None)
    ensure_queues(with_client)
    read = with_client.read_work_queues(work_pool_name="regflow")
    again = {q.name: (q.priority, q.concurrency_limit) for q in read}
    assert again["emergency"][0] < again["default"][0] and again["default"][1] == 2, again
