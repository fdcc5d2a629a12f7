"""Emergency runs come first: `regflow deploy` puts the `emergency` queue (the
emergency-response deployment and the incident actions) before `default` (everything
else) in the `regflow` pool, so a worker with a free slot takes an incident's run
before any queued enforcement run."""

from __future__ import annotations

from tests.conftest import prefect_client


def test_the_emergency_queue_comes_first_and_holds_the_emergency_deployments(deployed):
    from tasks.automations import ensure_queues

    with_client = prefect_client()
    queues = {q.name: q.priority for q in with_client.read_work_queues(work_pool_name="regflow")}
    assert queues["emergency"] < queues["default"], queues
    for name in ("emergency-response", "incident-close", "incident-release", "incident-relevel"):
        assert with_client.read_deployment_by_name(f"{name}/{name}").work_queue_name == "emergency", name
    for name in ("enforcement-case", "complaint-handling", "spot-check-sample", "penalty-publication"):
        assert with_client.read_deployment_by_name(f"{name}/{name}").work_queue_name == "default", name
    # Kept as it is by a second deploy; put back if someone reorders the queues.
    default = with_client.read_work_queue_by_name("default", work_pool_name="regflow")
    with_client.update_work_queue(default.id, priority=1)
    ensure_queues(with_client)
    again = {q.name: q.priority for q in with_client.read_work_queues(work_pool_name="regflow")}
    assert again["emergency"] < again["default"], again
