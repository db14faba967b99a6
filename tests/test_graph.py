"""`graph FACTORY`: the factory whole, plus the other factories' states it meets."""

from __future__ import annotations

from .conftest import FreqRepo

FILES = {
    ".frequency/build.yaml": """
        factory_id: build
        state: {initial: selected, terminal: [promoted]}
        steps:
          - {id: make, from_states: [selected], to_state: built, run: "true"}
          - {id: promote, from_states: [built], to_state: promoted, run: "true"}
        """,
    ".frequency/deploy.yaml": """
        factory_id: deploy
        state: {initial: queued, terminal: [live]}
        steps:
          - id: ship
            from_states: [queued]
            to_state: live
            requires:
              - subject_state: {factory_id: build, subject: "{subject}", states: [promoted]}
            emits: {factory_id: notes, state: todo}
            run: "true"
        """,
    ".frequency/notes.yaml": """
        factory_id: notes
        state: {initial: todo, terminal: [written]}
        steps:
          - {id: write, from_states: [todo], to_state: written, run: "true"}
        """,
    ".frequency/audit.yaml": """
        factory_id: audit
        state: {initial: waiting, terminal: [checked]}
        steps:
          - id: check
            from_states: [waiting]
            to_state: checked
            requires:
              - capacity: {factory_id: deploy, states: [live], below: 3}
            run: "true"
        """,
    ".frequency/other.yaml": """
        factory_id: other
        state: {initial: a, terminal: [b]}
        steps:
          - {id: go, from_states: [a], to_state: b, run: "true"}
        """,
}


def test_graph_of_one_factory_draws_its_edges_and_the_states_they_reach(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """deploy whole; build's promoted (required), notes' todo (emitted into) and audit's
    waiting (its capacity predicate names deploy) as nodes; unrelated factories left out."""
    r: FreqRepo = freq_repo(FILES)
    out = r.run("graph", "deploy").assert_success().out
    assert out == (
        "flowchart LR\n"
        "  subgraph audit\n"
        "    audit__waiting([waiting])\n"
        "  end\n"
        "  subgraph build\n"
        "    build__promoted((promoted))\n"
        "  end\n"
        "  subgraph deploy\n"
        "    deploy__queued([queued])\n"
        "    deploy__live((live))\n"
        "    deploy__queued -->|ship| deploy__live\n"
        "  end\n"
        "  subgraph notes\n"
        "    notes__todo([todo])\n"
        "  end\n"
        "  deploy__live -. capacity < 3 check .-> audit__waiting\n"
        "  build__promoted -. requires ship .-> deploy__queued\n"
        "  deploy__live == emits ==> notes__todo\n"
    )
    dot = r.run("graph", "deploy", "--format", "dot").assert_success().out
    assert '  build__promoted -> deploy__queued [label="requires ship", style=dotted];' in dot
    assert "other" not in dot
    assert r.run("graph", "other").assert_success().out == (
        "flowchart LR\n  subgraph other\n    other__a([a])\n    other__b((b))\n"
        "    other__a -->|go| other__b\n  end\n"
    )
