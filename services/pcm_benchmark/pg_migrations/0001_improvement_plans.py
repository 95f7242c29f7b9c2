# ruff: noqa: N999 (a numbered migration module, as in every migrations package)
"""Improvement plans (PDCA) and their history.

One row per plan (``improvement_plans``, keyed by entity and the entity's own plan id) holding
its current state; every change (registration, stage move, comment, closing) is a row of
``improvement_plan_history`` written in the same transaction, with who made it (the credential's
holder, role and token id) and when. ``id`` orders the listing (newest registration first, a
keyset page token: no offsets)."""

STATEMENTS = [
    """
    CREATE TABLE improvement_plans (
        id bigserial NOT NULL UNIQUE,
        entity_id text NOT NULL,
        plan_id text NOT NULL,
        title text NOT NULL,
        standard_code text NOT NULL,
        criterion_id text NOT NULL DEFAULT '',
        kpi_code text NOT NULL,
        baseline double precision NOT NULL,
        baseline_period date NOT NULL,
        target double precision NOT NULL,
        registered_on date NOT NULL,
        deadline date NOT NULL,
        owner_role text NOT NULL,
        actions jsonb NOT NULL,
        stage text NOT NULL CHECK (stage IN ('PLAN', 'DO', 'CHECK', 'ACT', 'CLOSED')),
        registered_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (entity_id, plan_id),
        CHECK (deadline > registered_on)
    )
    """,
    "CREATE INDEX improvement_plans_listing ON improvement_plans (registered_at DESC, id DESC)",
    """
    CREATE INDEX improvement_plans_entity
        ON improvement_plans (entity_id, registered_at DESC, id DESC)
    """,
    """
    CREATE TABLE improvement_plan_history (
        id bigserial PRIMARY KEY,
        entity_id text NOT NULL,
        plan_id text NOT NULL,
        change text NOT NULL CHECK (change IN ('REGISTERED', 'ADVANCED', 'COMMENTED', 'CLOSED')),
        from_stage text NOT NULL DEFAULT '',
        to_stage text NOT NULL,
        comment text NOT NULL DEFAULT '',
        details jsonb NOT NULL DEFAULT '{}',
        actor text NOT NULL,
        actor_role text NOT NULL,
        actor_token_id text NOT NULL,
        changed_at timestamptz NOT NULL DEFAULT now(),
        FOREIGN KEY (entity_id, plan_id) REFERENCES improvement_plans (entity_id, plan_id)
    )
    """,
    """
    CREATE INDEX improvement_plan_history_plan
        ON improvement_plan_history (entity_id, plan_id, id)
    """,
]
